"""``serve``: one :class:`~rxibkr.client.core.IbkrWsClient` published to Redis Streams for many consumers.

Three threads besides the client's own:

* the **publisher** takes every decoded message from the client's per-key subjects (the client's
  reader thread only puts it on a queue), gives it the next id of its stream and writes it with
  ``XADD ... MAXLEN ~ N``; whatever is queued meanwhile goes in the same pipeline, so one Redis round
  trip carries many messages. Market data also merges into the conid's snapshot hash (``HSET`` of
  the changed fields and the entry id), which late joiners read first. Connection state, errors and
  subscription statuses go through the same queue, so they are written in the order they happened.
* the **requests reader** blocks on ``XREAD`` of the requests stream, where consumers announce that
  their lease changed;
* the **control scheduler** (an ``EventLoopScheduler``) owns the reference counts: it reads a
  consumer's lease (a hash channel -> data with a TTL), recomputes which channels somebody wants and
  with which data (market-data fields are unioned), subscribes or disposes at the gateway, sweeps
  expired leases, and beats serve's ``alive`` key. Its timers are the only clocks used.

A Redis outage loses the messages of the outage (counted, and consumers see the gap in the entry
numbers); when Redis answers again serve writes its state, the subscription statuses and the full
market-data snapshots again, and waits one lease TTL before it treats a missing lease as expired,
so consumers have time to write theirs again.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import FrameType
from typing import Any

from reactivex.disposable import CompositeDisposable
from reactivex.scheduler import EventLoopScheduler

from rxibkr.client.core import IbkrWsClient
from rxibkr.client.events import ConnectionState, ErrorEvent
from rxibkr.client.subjects import HotSubject
from rxibkr.client.subscriptions import Subscription, SubscriptionStatus
from rxibkr.protocol import IbkrWsKey, Message, MessageKind
from rxibkr.remote._layout import (
    DEFAULT_LEASE_TTL,
    DEFAULT_MAXLEN,
    DEFAULT_PREFIX,
    FRAME,
    Layout,
    RawLink,
    connect,
    dumps,
    loads,
    pack,
    public_url,
)

_LOGGER = logging.getLogger(__name__)

_MD = IbkrWsKey.MARKET_DATA
_DATA = MessageKind.DATA
_MAX_BATCH = 1000
_BLOCK_MS = 5000
_EVENTS_MAXLEN = 10_000
_REQUESTS_MAXLEN = 10_000


class _Stop:
    """Queue item: finish the batch, write the stopped state, end the publisher."""


_SCRIPT = b"""
local maxlen = ARGV[1]
local i = 2
local n = #ARGV
while i <= n do
  if ARGV[i] == 'x' then
    redis.pcall('XADD', ARGV[i + 1], 'MAXLEN', '~', maxlen, ARGV[i + 2], 'f', ARGV[i + 3])
    i = i + 4
  else
    local last = i + 3 + 2 * tonumber(ARGV[i + 3])
    redis.pcall('HSET', ARGV[i + 1], '_id', ARGV[i + 2], unpack(ARGV, i + 4, last))
    i = last + 1
  end
end
return 1
"""
"""Writes a batch of messages in one command (one reply to read instead of one per write):
``x STREAM ID FRAME`` is an XADD, ``h HASH ID N k1 v1 ... kN vN`` an HSET of a snapshot. ``pcall``:
an entry id that exists already (a retried write) is refused by Redis and skipped, never doubled."""


class _Batch:
    """Commands packed for one round trip. Messages go into one EVAL of :data:`_SCRIPT` (a group);
    any other command closes the group first, so that everything is written in queue order."""

    __slots__ = ("count", "group", "group_args", "maxlen_bulk", "parts")

    def __init__(self, maxlen: int) -> None:
        self.parts: list[bytes] = []
        self.count = 0
        self.group: list[bytes] = []
        self.group_args = 0
        self.maxlen_bulk = _bulk(b"%d" % maxlen)

    def add(self, *args: Any) -> None:
        self.close_group()
        self.parts.append(pack(*args))
        self.count += 1

    def close_group(self) -> None:
        if self.group:
            self.parts.append(b"*%d\r\n" % (4 + self.group_args) + _EVAL_HEAD + self.maxlen_bulk)
            self.parts.extend(self.group)
            self.count += 1
            self.group = []
            self.group_args = 0

    def payload(self) -> bytes:
        self.close_group()
        return b"".join(self.parts)


class ServeStats:
    """Counters of a running :class:`Server` (read them from any thread)."""

    __slots__ = ("batches", "dropped", "gateway_subscriptions", "published", "redis_errors")

    def __init__(self) -> None:
        self.published = 0
        """Messages written to Redis."""
        self.dropped = 0
        """Messages lost because Redis did not answer (consumers see the gap)."""
        self.batches = 0
        """Pipelines sent (``published / batches``: messages per round trip)."""
        self.redis_errors = 0
        self.gateway_subscriptions = 0

    def __repr__(self) -> str:
        return (
            f"ServeStats(published={self.published}, dropped={self.dropped}, batches={self.batches}, "
            f"redis_errors={self.redis_errors}, gateway_subscriptions={self.gateway_subscriptions})"
        )


def merge_data(channel: str, datas: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """One subscription's data from what every consumer asked for: market-data fields unioned,
    ``tr`` the most days (real-time only if everybody wants only that), ``sd`` the union of keys and
    fields (absent: everything); other channels: the first request (they rarely differ)."""
    distinct: list[dict[str, Any] | None] = []
    seen: set[bytes] = set()
    for data in datas:
        token = dumps(data)
        if token not in seen:
            seen.add(token)
            distinct.append(data)
    if len(distinct) == 1:
        return distinct[0]
    head = channel.split("+", 1)[0]
    if head == "md":
        fields: list[str] = []
        for data in distinct:
            for field in (data or {}).get("fields") or ():
                if str(field) not in fields:
                    fields.append(str(field))
        return {"fields": fields}
    if head == "tr":
        days = [(d or {}).get("days") for d in distinct]
        merged: dict[str, Any] = {}
        if all((d or {}).get("realtimeUpdatesOnly") for d in distinct):
            merged["realtimeUpdatesOnly"] = True
        known = [d for d in days if isinstance(d, int)]
        if known:
            merged["days"] = max(known)
        return merged
    if head == "sd":
        out: dict[str, Any] = {}
        for name in ("keys", "fields"):
            values: list[str] | None = []
            for data in distinct:
                wanted = (data or {}).get(name)
                if wanted is None or values is None:
                    values = None
                else:
                    values.extend(v for v in wanted if v not in values)
            if values is not None:
                out[name] = values
        return out
    _LOGGER.warning("serve: consumers ask for one %r channel with different data; using the first", head)
    return distinct[0]


def _conid(message: Message) -> int | None:
    data = message.data
    if data is not None:
        conid = data.get("conid")
        if type(conid) is int:
            return conid
        if isinstance(conid, str) and conid.isdigit():
            return int(conid)
    target = message.target
    if target:
        head = target.split("@", 1)[0]
        if head.isdigit():
            return int(head)
    return None


class Server:
    """Publish ``client``'s messages to Redis and serve consumers' subscriptions (see the module doc).

    ``prefix``: the Redis key prefix (several gateways can share one Redis); ``maxlen``: entries kept
    per stream (``MAXLEN ~``: trimmed in whole nodes, so a little more may be kept); ``lease_ttl``:
    seconds after which a consumer that stopped renewing loses its subscriptions; ``heartbeat``:
    seconds between writes of serve's ``alive`` key (default a quarter of the TTL; the key lives
    three heartbeats). The client is not started or shut down here (:func:`serve` does that).
    """

    def __init__(
        self,
        client: IbkrWsClient,
        redis_url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        maxlen: int = DEFAULT_MAXLEN,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        heartbeat: float | None = None,
    ) -> None:
        if not isinstance(maxlen, int) or maxlen < 1:
            raise ValueError(f"maxlen: expected a positive number of entries, got {maxlen!r}")
        if not isinstance(lease_ttl, int | float) or not lease_ttl > 0:
            raise ValueError(f"lease_ttl: expected a positive number of seconds, got {lease_ttl!r}")
        if heartbeat is None:
            heartbeat = lease_ttl / 4
        if not isinstance(heartbeat, int | float) or not heartbeat > 0:
            raise ValueError(f"heartbeat: expected a positive number of seconds, got {heartbeat!r}")
        self.client = client
        self.layout = Layout(prefix)
        self.redis_url = redis_url
        self.maxlen = maxlen
        self.lease_ttl = float(lease_ttl)
        self.heartbeat = float(heartbeat)
        self.stats = ServeStats()
        self._publish_redis = connect(redis_url, client_name="rxibkr-serve-publisher")
        self._link = RawLink(self._publish_redis)
        self._control_redis = connect(redis_url, client_name="rxibkr-serve-control")
        self._requests_redis = connect(
            redis_url, socket_timeout=_BLOCK_MS / 1000 + 5, client_name="rxibkr-serve-requests"
        )
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._scheduler = EventLoopScheduler(thread_factory=_daemon("rxibkr-serve-control"))
        self._disposables = CompositeDisposable()
        self._started = False
        self._stopped = False
        self._stop_lock = threading.Lock()
        # publisher thread only
        self._epoch = int(time.time() * 1000)
        self._counters: dict[str, int] = {}
        self._md_heads: dict[int, tuple[bytes, bytes, str]] = {}
        self._field_names: dict[str, bytes] = {}
        self._snapshots: dict[int, tuple[dict[str, bytes], str]] = {}
        self._subs: dict[str, str] = {}
        self._state = ConnectionState.STOPPED.value
        self._resync = True
        self._publisher: threading.Thread | None = None
        # control scheduler only
        self._leases: dict[str, dict[str, Any]] = {}
        self._gateway: dict[str, tuple[Subscription, dict[str, Any] | None]] = {}
        self._grace_until = 0.0
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        # requests reader
        self._requests_last = "0-0"
        self._requests_thread: threading.Thread | None = None
        self._requests_failures = 0

    # =============================================================================================
    # lifecycle
    # =============================================================================================
    def start(self) -> Server:
        """Start publishing and serving consumers (returns at once)."""
        if self._started:
            return self
        self._started = True
        self._epoch = self._next_epoch()
        self._publisher = threading.Thread(
            target=self._publish_loop, name="rxibkr-serve-publisher", daemon=True
        )
        self._publisher.start()
        put = self._queue.put
        for key in IbkrWsKey:
            source = self.client.observe(key)
            if isinstance(source, HotSubject):  # the client's own subject: no reactivex wrapper hop
                self._disposables.add(source.attach(put))
            else:  # pragma: no cover - a client with other subjects
                self._disposables.add(source.subscribe(put))
        self._disposables.add(self.client.state.subscribe(self._on_state))
        self._disposables.add(self.client.errors.subscribe(self._on_error))
        self._put_account()  # the leases already written are read once the requests reader has started
        self._disposables.add(
            self._scheduler.schedule_periodic(self.heartbeat, lambda _: self._queue.put(("beat",)))
        )
        self._disposables.add(self._scheduler.schedule_periodic(self.lease_ttl / 4, lambda _: self._sweep()))
        self._queue.put(("beat",))
        self._start_requests_reader()
        _LOGGER.info("serve: publishing to %s (prefix %r)", public_url(self.redis_url), self.layout.prefix)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Release every gateway subscription, write the stopped state, stop the threads. Leases stay
        in Redis: a serve started again restores the consumers' subscriptions from them."""
        with self._stop_lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
        self._disposables.dispose()
        done = threading.Event()

        def release(*_: Any) -> None:
            try:
                for channel in list(self._gateway):
                    self._release(channel)
            finally:
                done.set()

        self._scheduler.schedule(release)
        done.wait(timeout)
        self._queue.put(_Stop())
        if self._publisher is not None:
            self._publisher.join(timeout)
        try:  # wake the requests reader
            self._control_redis.xadd(
                self.layout.requests, {"c": ""}, maxlen=_REQUESTS_MAXLEN, approximate=True
            )
        except Exception:
            pass
        if self._requests_thread is not None:
            self._requests_thread.join(timeout)
        self._scheduler.dispose()
        self._link.close()
        for connection in (self._publish_redis, self._control_redis, self._requests_redis):
            try:
                connection.close()
            except Exception:
                pass
        _LOGGER.info("serve: stopped (%s)", self.stats)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def epoch(self) -> int:
        return self._epoch

    def channels(self) -> dict[str, int]:
        """The channels subscribed at the gateway and how many consumers hold each (a snapshot)."""
        result: dict[str, int] = {}
        done = threading.Event()

        def read(*_: Any) -> None:
            for lease in self._leases.values():
                for channel in lease:
                    result[channel] = result.get(channel, 0) + 1
            done.set()

        self._scheduler.schedule(read)
        done.wait(5.0)
        return result

    def _next_epoch(self) -> int:
        now = int(time.time() * 1000)
        try:
            if self._control_redis.exists(self.layout.alive):
                _LOGGER.warning(
                    "serve: another serve seems to run with prefix %r (its alive key is set); run one "
                    "per prefix, or give this one its own --prefix",
                    self.layout.prefix,
                )
            old = self._control_redis.get(self.layout.epoch)
            epoch = max(now, int(old) + 1) if old is not None else now
            self._control_redis.set(self.layout.epoch, epoch)
        except Exception as exc:
            _LOGGER.warning("serve: Redis does not answer yet (%s); it will be written when it does", exc)
            epoch = now
        return epoch

    def _on_state(self, state: ConnectionState) -> None:
        self._queue.put(("state", state.value))
        self._put_account()  # the gateway learns its account once authenticated: announce it then

    def _put_account(self) -> None:
        account = self.client.account_id
        self._queue.put(("account", account or ""))

    def _on_error(self, event: ErrorEvent) -> None:
        self._queue.put(("error", event.kind.value, event.message))

    # =============================================================================================
    # publisher
    # =============================================================================================
    def _publish_loop(self) -> None:
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        link = self._link
        while True:
            batch = [get()]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(get_nowait())
                except queue.Empty:
                    break
            stop = any(isinstance(item, _Stop) for item in batch)
            out = _Batch(self.maxlen)
            if self._resync:
                self._write_resync(out)
            messages = 0
            epoch_reads: list[int] = []
            write_message = self._write_message
            for item in batch:
                if type(item) is Message:
                    write_message(out, item)
                    messages += 1
                elif isinstance(item, tuple) and self._write_event(out, item):
                    epoch_reads.append(out.count - 1)
            if stop:
                self._write_stopped(out)
            try:
                payload = out.payload()
                results = link.execute(payload, out.count)
            except Exception as exc:  # Redis away: the batch is lost, consumers see the gap
                self.stats.dropped += messages
                self.stats.redis_errors += 1
                if not self._resync:
                    _LOGGER.warning("serve: Redis write failed (%s); resyncing when it answers", exc)
                self._resync = True
            else:
                self._resync = False
                self.stats.published += messages
                self.stats.batches += 1
                if any(results[i] is None for i in epoch_reads):  # the epoch key is gone: Redis lost its data
                    _LOGGER.warning("serve: Redis lost its data (restarted?); writing everything again")
                    self._resync = True
                    self._scheduler.schedule(lambda *_: self._lost_data())
            if stop:
                return

    def _write_message(self, out: _Batch, message: Message) -> None:
        """XADD (and for market data an HSET of the snapshot), packed by hand: this is serve's hot
        path, and the per-stream command heads and the field names are cached as RESP bytes."""
        raw = message.raw
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        if message.key is _MD and message.kind is _DATA:
            conid = _conid(message)
            if conid is not None:
                heads = self._md_heads.get(conid)
                if heads is None:
                    heads = self._md_heads[conid] = self._md_heads_of(conid)
                xadd_head, hset_head, stream = heads
                n = self._counters.get(stream, 0) + 1
                self._counters[stream] = n
                entry_id = b"%d-%d" % (self._epoch, n)
                id_bulk = b"$%d\r\n%b\r\n" % (len(entry_id), entry_id)
                data = message.data or {}
                names = self._field_names
                fields: dict[str, bytes] = {}
                nf = b"%d" % len(data)
                group = out.group
                group.append(xadd_head + id_bulk + b"$%d\r\n%b\r\n" % (len(raw), raw))
                group.append(hset_head + id_bulk + b"$%d\r\n%b\r\n" % (len(nf), nf))
                for key, value in data.items():
                    name = names.get(key)
                    if name is None:
                        name = names[key] = _bulk(key.encode())
                    encoded = dumps(value)
                    fields[key] = encoded
                    group.append(name)
                    group.append(b"$%d\r\n%b\r\n" % (len(encoded), encoded))
                out.group_args += 8 + 2 * len(data)
                known = self._snapshots.get(conid)
                if known is None:
                    self._snapshots[conid] = (fields, entry_id.decode())
                else:
                    known[0].update(fields)
                    self._snapshots[conid] = (known[0], entry_id.decode())
                return
        stream = self.layout.key_stream(message.key or IbkrWsKey.ERROR)
        n = self._counters.get(stream, 0) + 1
        self._counters[stream] = n
        entry_id = b"%d-%d" % (self._epoch, n)
        out.group.append(_X + _bulk(stream.encode()) + _bulk(entry_id) + _bulk(raw))
        out.group_args += 4

    def _md_heads_of(self, conid: int) -> tuple[bytes, bytes, str]:
        stream = self.layout.md(conid)
        xadd = _X + _bulk(stream.encode())
        hset = _H + _bulk(self.layout.md_snapshot(conid).encode())
        return xadd, hset, stream

    def _event(self, out: _Batch, fields: dict[str, Any]) -> None:
        out.add("XADD", self.layout.events, "MAXLEN", "~", _EVENTS_MAXLEN, "*", *_flat(fields))

    def _write_event(self, out: _Batch, item: tuple[Any, ...]) -> bool:
        """One control item; True for a heartbeat (its last command is ``GET epoch``)."""
        kind = item[0]
        layout = self.layout
        if kind == "state":
            self._state = item[1]
            out.add("SET", layout.state, item[1])
            self._event(out, {"t": "state", "v": item[1], "e": self._epoch})
        elif kind == "error":
            self._event(out, {"t": "error", "k": item[1], "m": item[2]})
        elif kind == "sub":
            channel, status = item[1], item[2]
            if status == SubscriptionStatus.UNSUBSCRIBED.value:
                self._subs.pop(channel, None)
                out.add("HDEL", layout.subs, channel)
            else:
                self._subs[channel] = status
                out.add("HSET", layout.subs, channel, status)
            self._event(out, {"t": "sub", "c": channel, "v": status})
        elif kind == "drop_md":
            conid = item[1]
            self._snapshots.pop(conid, None)
            out.add("DEL", layout.md(conid), layout.md_snapshot(conid))
        elif kind == "drop_key":
            out.add("DEL", layout.key_stream(item[1]))
        elif kind == "account":
            if item[1]:
                out.add("SET", layout.account, item[1])
        elif kind == "beat":
            out.add("SET", layout.alive, self._epoch, "PX", int(self.heartbeat * 3000))
            out.add("GET", layout.epoch)
            return True
        return False

    def _write_resync(self, out: _Batch) -> None:
        layout = self.layout
        out.add("SET", layout.epoch, self._epoch)
        out.add("SET", layout.state, self._state)
        out.add("SET", layout.alive, self._epoch, "PX", int(self.heartbeat * 3000))
        out.add("DEL", layout.subs)
        if self._subs:
            out.add("HSET", layout.subs, *_flat(self._subs))
        account = self.client.account_id
        if account:
            out.add("SET", layout.account, account)
        for conid, (fields, entry_id) in self._snapshots.items():
            out.add("HSET", layout.md_snapshot(conid), "_id", entry_id, *_flat(fields))
        self._event(out, {"t": "state", "v": self._state, "e": self._epoch})

    def _write_stopped(self, out: _Batch) -> None:
        layout = self.layout
        out.add("SET", layout.state, ConnectionState.STOPPED.value)
        out.add("DEL", layout.alive, layout.subs)
        self._event(out, {"t": "stop", "v": ConnectionState.STOPPED.value, "e": self._epoch})

    # =============================================================================================
    # requests reader
    # =============================================================================================
    def _start_requests_reader(self) -> None:
        self._requests_thread = threading.Thread(
            target=self._requests_loop, name="rxibkr-serve-requests", daemon=True
        )
        self._requests_thread.start()

    def _requests_loop(self) -> None:
        redis = self._requests_redis
        try:
            if self._requests_last == "0-0":
                last = redis.xrevrange(self.layout.requests, count=1)
                self._requests_last = last[0][0].decode() if last else "0-0"
                # every request after that entry is read below; every lease written before it is read
                # now (a consumer writes its lease and then its request, in one MULTI). Reading the
                # leases earlier (at start) lost a consumer whose request came in between.
                self._scheduler.schedule(lambda *_: self._restore_all())
            if self._requests_failures:
                self._requests_failures = 0
                self._scheduler.schedule(lambda *_: self._lost_data())
            while not self._stopped:
                reply = redis.xread({self.layout.requests: self._requests_last}, block=_BLOCK_MS, count=1000)
                for _stream, entries in reply.items() if isinstance(reply, dict) else reply or ():
                    consumers: set[str] = set()
                    for entry_id, fields in entries:
                        self._requests_last = entry_id.decode()
                        consumer = fields.get(b"c", b"").decode()
                        if consumer:
                            consumers.add(consumer)
                    if consumers:
                        self._reconcile_later(consumers)
        except Exception as exc:
            if self._stopped:
                return
            self._requests_failures += 1
            delay = min(0.1 * 2 ** min(self._requests_failures, 5), 2.0)
            _LOGGER.warning("serve: reading consumer requests failed (%s); retrying in %.1f s", exc, delay)
            self._scheduler.schedule_relative(
                timedelta(seconds=delay), lambda *_: self._start_requests_reader()
            )

    def _reconcile_later(self, consumers: set[str]) -> None:
        with self._pending_lock:
            first = not self._pending
            self._pending |= consumers
        if first:
            self._scheduler.schedule(lambda *_: self._reconcile_pending())

    # =============================================================================================
    # control scheduler: leases and gateway subscriptions
    # =============================================================================================
    def _now(self) -> float:
        return self._scheduler.now.timestamp()

    def _reconcile_pending(self) -> None:
        with self._pending_lock:
            consumers, self._pending = self._pending, set()
        self._read_leases(sorted(consumers))

    def _read_leases(self, consumers: list[str]) -> None:
        if not consumers or self._stopped:
            return
        try:
            pipe = self._control_redis.pipeline(transaction=False)
            for consumer in consumers:
                pipe.hgetall(self.layout.lease(consumer))
            leases = pipe.execute()
        except Exception as exc:
            _LOGGER.warning("serve: reading leases failed (%s)", exc)
            return
        for consumer, raw in zip(consumers, leases, strict=True):
            if raw:
                self._reconcile(consumer, _decode_lease(raw))
            elif self._now() >= self._grace_until:
                self._reconcile(consumer, None)

    def _restore_all(self) -> None:
        """Every consumer in the registry set: its lease (serve started, or Redis came back)."""
        try:
            members = sorted(m.decode() for m in self._control_redis.smembers(self.layout.consumers))
        except Exception as exc:
            _LOGGER.warning("serve: reading the consumers failed (%s)", exc)
            return
        self._read_leases(sorted(set(members) | set(self._leases)))

    def _lost_data(self) -> None:
        """Redis lost its data or we lost Redis for a while: give consumers one TTL to write their
        leases again before missing ones count as expired, and read what is there now."""
        self._grace_until = self._now() + self.lease_ttl
        self._restore_all()

    def _sweep(self) -> None:
        if self._stopped or not self._leases or self._now() < self._grace_until:
            return
        consumers = sorted(self._leases)
        try:
            pipe = self._control_redis.pipeline(transaction=False)
            for consumer in consumers:
                pipe.exists(self.layout.lease(consumer))
            alive = pipe.execute()
        except Exception:
            return  # Redis away: nothing expires while we cannot see it
        for consumer, exists in zip(consumers, alive, strict=True):
            if not exists:
                _LOGGER.info("serve: a consumer's lease expired; releasing its subscriptions")
                self._reconcile(consumer, None)
                try:
                    self._control_redis.srem(self.layout.consumers, consumer)
                except Exception:
                    pass

    def _reconcile(self, consumer: str, lease: dict[str, Any] | None) -> None:
        if self._stopped:
            return
        old = self._leases.pop(consumer, {})
        if lease:
            self._leases[consumer] = lease
        for channel in sorted(set(old) | set(lease or {})):
            self._sync(channel)
        self.stats.gateway_subscriptions = len(self._gateway)

    def _sync(self, channel: str) -> None:
        datas = [lease[channel] for lease in self._leases.values() if channel in lease]
        current = self._gateway.get(channel)
        if not datas:
            if current is not None:
                self._release(channel)
            return
        merged = merge_data(channel, datas)
        if current is not None and current[1] == merged:
            return
        try:
            handle = self.client.subscribe(channel, merged, wait=False)
        except Exception as exc:
            _LOGGER.warning("serve: refused a consumer's %r subscription: %s", channel.split("+", 1)[0], exc)
            self._queue.put(("error", "subscription_failed", f"serve refused {channel!r}: {exc}"))
            return
        self._gateway[channel] = (handle, merged)

        def on_status(status: SubscriptionStatus, handle: Subscription = handle) -> None:
            entry = self._gateway.get(channel)
            if entry is not None and entry[0] is handle:
                self._queue.put(("sub", channel, status.value))

        handle.on_status(on_status)
        self._queue.put(("sub", channel, handle.status.value))
        if current is not None:
            current[0].dispose()  # the new handle holds the server subscription: this only detaches

    def _release(self, channel: str) -> None:
        entry = self._gateway.pop(channel, None)
        if entry is None:
            return
        entry[0].dispose()  # the last handle: the client sends the unsubscribe
        self._queue.put(("sub", channel, SubscriptionStatus.UNSUBSCRIBED.value))
        head, _, rest = channel.partition("+")
        if head == "md":
            conid = rest.split("+", 1)[0].split("@", 1)[0]
            if conid.isdigit():
                self._queue.put(("drop_md", int(conid)))
        else:
            key = IbkrWsKey.from_channel(head)
            if not any(other.partition("+")[0] == head for other in self._gateway):
                self._queue.put(("drop_key", key))
        self.stats.gateway_subscriptions = len(self._gateway)


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


_FRAME_BULK = _bulk(FRAME)
_EVAL_HEAD = _bulk(b"EVAL") + _bulk(_SCRIPT) + _bulk(b"0")
_X = _bulk(b"x")
_H = _bulk(b"h")


def _flat(fields: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = []
    for key, value in fields.items():
        out.append(key)
        out.append(value)
    return out


def _decode_lease(raw: dict[bytes, bytes]) -> dict[str, Any]:
    lease: dict[str, Any] = {}
    for channel, data in raw.items():
        try:
            lease[channel.decode()] = loads(data)
        except Exception:
            _LOGGER.warning("serve: ignoring a lease entry that is not JSON")
    return lease


def _daemon(name: str) -> Callable[[Callable[[], Any]], threading.Thread]:
    def factory(target: Callable[[], Any]) -> threading.Thread:
        return threading.Thread(target=target, name=name, daemon=True)

    return factory


def serve(
    client: IbkrWsClient,
    redis_url: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    maxlen: int = DEFAULT_MAXLEN,
    lease_ttl: float = DEFAULT_LEASE_TTL,
    heartbeat: float | None = None,
    ready: Callable[[Server], None] | None = None,
) -> ServeStats:
    """Publish ``client`` to Redis (see :class:`Server`) until SIGINT or SIGTERM, then release every
    gateway subscription and return the counters. Starts the client if it is not running; shutting it
    down is left to the caller. Call it from the main thread (signals are delivered there).
    ``ready`` is called with the running server once it publishes."""
    server = Server(client, redis_url, prefix=prefix, maxlen=maxlen, lease_ttl=lease_ttl, heartbeat=heartbeat)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        if not client.running:
            client.start()
        if ready is not None:
            ready(server)
        while not stop.wait(3600):  # woken by the signal handler
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return server.stats


__all__ = ["ServeStats", "Server", "merge_data", "serve"]
