"""Where ``serve`` and its consumers keep things in Redis (shared by both sides), and small helpers.

Every key starts with a prefix (default ``rxibkr``), so several gateways can share one Redis:

=============================  ==========  =========================================================
key                            type        what
=============================  ==========  =========================================================
``P:md:<conid>``               stream      the market-data frames (``smd``) of one contract
``P:mdsnap:<conid>``           hash        its merged fields (JSON values) and ``_id``: the id of the
                                           last entry merged in (late joiners start there)
``P:k:<KEY>``                  stream      the frames of one other :class:`IbkrWsKey` (``ORDERS``...)
``P:events``                   stream      serve's events: connection state, errors, subscription
                                           statuses, start and stop
``P:state``                    string      the gateway connection state (``ConnectionState`` value)
``P:subs``                     hash        channel -> subscription status at the gateway
``P:account``                  string      the gateway client's account id (if it has one)
``P:alive``                    string      present while serve runs (expires when it dies)
``P:epoch``                    string      serve's current epoch (see below)
``P:requests``                 stream      consumers' "my lease changed" notices
``P:consumers``                set         ids of consumers that hold leases
``P:lease:<consumer>``         hash        channel -> JSON subscription data; expires after the TTL
``P:wake:<consumer>``          stream      wakes the consumer's blocking read when its set of streams
                                           changes
=============================  ==========  =========================================================

Entry ids of data streams are set by serve: ``<epoch>-<n>``, where the epoch is a millisecond time
taken when serve starts (always above any earlier epoch) and ``n`` counts the entries of that stream
in that epoch from 1 without a hole. A consumer that sees ``n`` jump knows how many entries it lost
(trimmed by MAXLEN, or never published while Redis was away); ids never repeat, so nothing is
delivered twice, even when a write is retried.
"""

from __future__ import annotations

from typing import Any

import orjson

from rxibkr.protocol import IbkrWsKey

DEFAULT_PREFIX = "rxibkr"
DEFAULT_LEASE_TTL = 10.0
DEFAULT_MAXLEN = 10_000
FRAME = b"f"
"""The field of a data-stream entry holding the frame exactly as the gateway sent it."""


class Layout:
    """Key names under one prefix."""

    __slots__ = (
        "account",
        "alive",
        "consumers",
        "epoch",
        "events",
        "prefix",
        "requests",
        "state",
        "subs",
    )

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"prefix: expected a non-empty string without spaces, got {prefix!r}")
        self.prefix = prefix
        self.events = f"{prefix}:events"
        self.state = f"{prefix}:state"
        self.subs = f"{prefix}:subs"
        self.account = f"{prefix}:account"
        self.alive = f"{prefix}:alive"
        self.epoch = f"{prefix}:epoch"
        self.requests = f"{prefix}:requests"
        self.consumers = f"{prefix}:consumers"

    def md(self, conid: int | str) -> str:
        return f"{self.prefix}:md:{conid}"

    def md_snapshot(self, conid: int | str) -> str:
        return f"{self.prefix}:mdsnap:{conid}"

    def key_stream(self, key: IbkrWsKey) -> str:
        return f"{self.prefix}:k:{key.value}"

    def lease(self, consumer: str) -> str:
        return f"{self.prefix}:lease:{consumer}"

    def wake(self, consumer: str) -> str:
        return f"{self.prefix}:wake:{consumer}"


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    """``b"1700000000000-5"`` -> (1700000000000, 5)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(value: bytes | str) -> Any:
    return orjson.loads(value)


def connect(url: str, **options: Any) -> Any:
    """A redis-py client for ``url`` without redis-py's own retries (we reconnect on scheduler timers
    and never re-send a write blindly). ImportError with a hint when redis-py is missing."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "rxibkr.remote needs redis-py: pip install 'rxibkr[remote]' (or pip install redis)"
        ) from exc
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"redis_url: expected a redis://HOST:PORT/DB URL, got {url!r}")
    options.setdefault("socket_keepalive", True)
    options.setdefault("socket_connect_timeout", 5.0)
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)


def public_url(url: str) -> str:
    """``url`` without a password, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def pack(*args: bytes | str | int) -> bytes:
    """One command in the Redis protocol (RESP), for the hot paths that write many at once."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        else:
            data = str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class RawLink:
    """One connection of a redis-py client used directly: packed commands out, raw replies in (no
    response callbacks). Owned by one thread. Raises redis-py's errors; after a connection error the
    next call reconnects."""

    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool
        self._connection: Any = None

    def _conn(self) -> Any:
        if self._connection is None:
            self._connection = self._pool.get_connection()
        return self._connection

    def execute(self, packed: bytes, replies: int) -> list[Any]:
        """Send ``packed`` (``replies`` commands); their replies, errors as exception values."""
        from redis.exceptions import ResponseError

        connection = self._conn()
        try:
            connection.send_packed_command([packed])
            out: list[Any] = []
            read = connection.read_response
            for _ in range(replies):
                try:
                    out.append(read())
                except ResponseError as exc:
                    out.append(exc)
            return out
        except BaseException:
            connection.disconnect()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            self._pool.release(self._connection)
            self._connection = None
