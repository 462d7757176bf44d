"""IBind's queues (seed compatibility): one queue per queued key, IBind's item shapes, bounded memory.

:class:`IbindQueues` is all the queue logic of the client. The client constructs it once and calls
:meth:`IbindQueues.put` on the reader thread for every decoded :class:`~rxibkr.protocol.Message`;
``new_queue_accessor``/``get``/``empty`` serve the seed API.

Semantics, as IBind 0.1.14 (``IbkrWsClient._on_message`` + ``QueueController``):

* One queue per queued key, from construction: a message that arrives before any accessor exists
  waits in its key's queue. Every accessor of a key reads that one queue (they compete for its items,
  as IBind's do); an accessor holds no items, so a dropped accessor costs nothing.
* Queued keys: the eight solicited keys plus ``unsolicited_channels_to_be_queued``.
* Items exactly as IBind's: the whole message dict for every solicited key but market data
  (``{"topic": "sor", "args": [...]}``), ACCOUNT_UPDATES, BULLETINS and ERROR; ``args`` (or ``{}``) for
  AUTHENTICATION_STATUS and NOTIFICATIONS; for MARKET_DATA ``{conid: {"conid", "_updated", "topic",
  <IBind's field names>...}}`` with IBind's names (:data:`~rxibkr.protocol.fields.IBIND_FIELDS`) and every
  key IBind does not know dropped. ERROR gets the frames that carry an ``error`` key (not malformed or
  unknown frames: those are on ``client.errors``). A frame whose topic IBind routes by its letters
  (``umd+1``, ``sorx``) lands where IBind puts it. The deviations are listed in docs/ibind.md.
* Memory is bounded: a queue keeps at most ``maxsize`` items (10 000) once it has been read (an
  accessor made, ``get`` or ``empty`` called), and at most ``idle_maxsize`` items (1 000) before that;
  when full it drops the oldest. Drops are counted (:meth:`IbindQueues.dropped`) and reported through
  ``report("QUEUE_OVERFLOW", ...)`` at the 1st, 10th, 100th, ... drop of a key that has been read; the
  drops of a queue nobody has read yet are reported once, when it is first read (a program that only
  uses the Observables never reads the queues and gets no noise, and pays at most ``idle_maxsize``
  messages per key). ``maxsize=None`` keeps IBind's unbounded queues once read (``idle_maxsize=None``:
  before too) and reports once a queue passes 10 000, 100 000, ... items.

Cost: items are built when taken, not when put. The reader thread only appends the decoded message
to a deque (about 130 ns, see tests/ibind/test_ibind_queues.py); a market-data message nobody takes
is never converted. Blocking ``get`` waits on a condition that ``put`` signals only when a reader waits.
The client's reader appends market data (the message's dict) to ``IbindQueues.md_queue`` itself
(``_Reader.on_frame``) and wakes a waiting consumer once per socket read, not once per message (the
consumer then takes everything present without waiting): one thread hand-over per batch of frames.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from rxibkr.protocol import IbkrWsKey, Message, MessageKind
from rxibkr.protocol.fields import IBIND_FIELDS

_LOGGER = logging.getLogger(__name__)

K = TypeVar("K")

DEFAULT_MAXSIZE = 10_000
"""Items a queue that has been read keeps before it drops the oldest."""

DEFAULT_IDLE_MAXSIZE = 1_000
"""Items a queue nobody has read yet keeps before it drops the oldest."""

_NEVER = 1 << 62  # next_report of a queue nobody has read: its drops are reported when it is first read

_WARN_FIRST = 10_000  # maxsize=None: the first backlog at which a queue is reported

Report = Callable[[str, str], None]
"""The client's error/warning sink: ``report(kind_name, message)``."""

_MD = IbkrWsKey.MARKET_DATA
_SYSTEM = IbkrWsKey.SYSTEM
_ERROR = IbkrWsKey.ERROR
_DATA = MessageKind.DATA
_UNKNOWN = MessageKind.UNKNOWN
_MISSING: Any = object()

# IBind routes a topic it does not know by its letters 1-2 (``IbkrWsKey.from_channel(channel[:2])``)
_SOLICITED_BY_CHANNEL: dict[str, IbkrWsKey] = {key.channel: key for key in IbkrWsKey if key.solicited}

# ======================================================================================================
# item shapes
# ======================================================================================================
_ibind_field = dict(IBIND_FIELDS).get  # a dict's get: a mappingproxy's costs ~300 instructions more a key

_SHAPES: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
"""A frame's keys, in order -> the (field id, IBind name) pairs IBind keeps of it, in that order."""

_SHAPES_MAX = 4096  # frames carry the fields that changed: a few shapes in practice; cleared when full


def _shape(keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for key in keys:
        name = _ibind_field(key)
        if name is not None:
            pairs.append((key, name))
    if len(_SHAPES) >= _SHAPES_MAX:
        _SHAPES.clear()
    shape = _SHAPES[keys] = tuple(pairs)
    return shape


def market_data_item(
    data: Mapping[str, Any],
    _shapes_get: Callable[[tuple[str, ...]], tuple[tuple[str, str], ...] | None] = _SHAPES.get,
    _tuple: type[tuple[Any, ...]] = tuple,
    _missing: Any = _MISSING,
) -> dict[Any, dict[str, Any]]:
    """IBind's MARKET_DATA queue item for an ``smd`` frame: ``{conid: {conid, _updated, topic, ...}}``.

    Field ids are renamed with IBind's table and every other key is dropped, as IBind does
    (``_preprocess_market_data_message``, ``unwrap_market_data=True``). The frame must carry ``conid``.
    Runs on the consumer's thread, once per item taken: which keys IBind keeps, and under which names,
    is looked up once per shape of frame (its keys in order), not once per key.
    """
    conid = data["conid"]
    updated = data.get("_updated", _missing)
    if updated is not _missing:
        result = {"conid": conid, "_updated": updated, "topic": data.get("topic")}
    else:  # IBind raises KeyError (and loses the frame) when it is absent
        result = {"conid": conid, "topic": data.get("topic")}
    keys = _tuple(data)
    shape = _shapes_get(keys)
    if shape is None:
        shape = _shape(keys)
    for key, name in shape:
        result[name] = data[key]  # "6008" overwrites "conid", as in IBind
    return {conid: result}


def _whole(data: Any) -> Any:
    return data


def _args(data: Any) -> Any:
    return data.get("args", {})


_ITEM: dict[IbkrWsKey, Callable[[Any], Any]] = {key: _whole for key in IbkrWsKey}
_ITEM[_MD] = market_data_item
_ITEM[IbkrWsKey.AUTHENTICATION_STATUS] = _args
_ITEM[IbkrWsKey.NOTIFICATIONS] = _args


def ibind_item(key: IbkrWsKey, message: Message) -> Any:
    """The item IBind puts on ``key``'s queue for ``message`` (see :meth:`IbindQueues.route`)."""
    return _ITEM[key](message.data)


def _md_queueable(data: Mapping[str, Any]) -> bool:
    """IBind queues None for an ``smd`` frame without conid (dropped here); an unhashable conid raises."""
    conid = data.get("conid", _MISSING)
    if conid is _MISSING:
        return False
    try:
        hash(conid)
    except TypeError:
        return False
    return True


# ======================================================================================================
# the queue of one key, and IBind's QueueAccessor / QueueController
# ======================================================================================================
class KeyQueue:
    """The one queue of a key: a deque, bounded or not, with ``queue.Queue``'s get/put/empty/qsize.

    Items the IbindQueues put are decoded messages (the client's reader puts a market-data message's
    dict), turned into IBind's item when taken (``finish``).
    """

    __slots__ = (
        "_finish", "cond", "dropped", "items", "key", "limit", "maxsize", "next_report", "silent", "waiters",
    )  # fmt: skip

    def __init__(self, key: Any, maxsize: int | None = None) -> None:
        if maxsize is not None and maxsize < 1:
            raise ValueError(f"maxsize: expected a positive number of items, or None, got {maxsize!r}")
        self.key = key
        self.items: deque[Any] = deque()
        self.maxsize = maxsize
        self.limit = maxsize if maxsize is not None else _WARN_FIRST  # put() checks len(items) >= limit
        self.dropped = 0
        self.next_report = 1
        self.waiters = 0
        self.cond = threading.Condition(threading.Lock())
        self.silent = False  # bounded and nobody has read it yet: a full queue drops with no report check
        self._finish: Callable[[Any], Any] | None = None  # a Message's data -> IBind's item

    # -- producer ---------------------------------------------------------------------------------
    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Append ``item`` (the oldest item is dropped when the queue is full; never blocks)."""
        items = self.items
        if len(items) >= self.limit:
            self.make_room()
        items.append(item)
        if self.waiters:
            self.wake()

    put_nowait = put

    def make_room(self) -> bool:
        """Drop the oldest item if full (bounded); returns True when an item was dropped."""
        if self.maxsize is None:
            self.limit *= 10
            return False
        try:
            self.items.popleft()
        except IndexError:  # a reader emptied it meanwhile
            return False
        self.dropped += 1
        return True

    def wake(self) -> None:
        with self.cond:
            self.cond.notify()

    # -- consumers ---------------------------------------------------------------------------------
    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The oldest item; raises ``queue.Empty`` like ``queue.Queue.get``."""
        if timeout is not None and block and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        try:
            item = self.items.popleft()
        except IndexError:
            if not block:
                raise queue.Empty from None
            item = self._wait(timeout)
        finish = self._finish
        if finish is not None:  # a queue of the IbindQueues: IBind's item, built now
            cls = item.__class__
            if cls is dict:  # a market-data message's data, put by the client's reader
                return finish(item)
            if cls is Message:
                return finish(item.data)
        return item

    def get_nowait(self) -> Any:
        return self.get(False)

    def _wait(self, timeout: float | None) -> Any:
        items = self.items
        cond = self.cond
        with cond:
            self.waiters += 1  # before the check below: a put() after it sees the waiter and wakes it
            try:
                if timeout is None:
                    while True:
                        try:
                            return items.popleft()
                        except IndexError:
                            cond.wait()
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        return items.popleft()
                    except IndexError:
                        pass
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise queue.Empty
                    cond.wait(remaining)
            finally:
                self.waiters -= 1

    def empty(self) -> bool:
        return not self.items

    def full(self) -> bool:
        return self.maxsize is not None and len(self.items) >= self.maxsize

    def qsize(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        size, maxsize, dropped = len(self.items), self.maxsize, self.dropped
        return f"KeyQueue(key={self.key}, size={size}, maxsize={maxsize}, dropped={dropped})"


class QueueAccessor(Generic[K]):
    """Access to a key's queue (IBind's ``QueueAccessor``): ``get``, ``empty``, ``key``.

    All accessors of a key read the same queue. An accessor holds no items of its own.
    """

    __slots__ = ("__weakref__", "_key", "_queue")

    def __init__(self, queue_: Any, key: K) -> None:
        self._queue = queue_
        self._key = key

    @property
    def key(self) -> K:
        return self._key

    def get(self, block: bool = False, timeout: float | None = None) -> Any | None:
        """The next item, or None when none arrives (immediately, or within ``timeout`` when ``block``)."""
        try:
            return self._queue.get(block, timeout)  # positional: queue.Queue's and KeyQueue's order
        except queue.Empty:
            return None

    def empty(self) -> bool:
        return bool(self._queue.empty())

    def qsize(self) -> int:
        return int(self._queue.qsize())

    def __str__(self) -> str:
        return f"QueueAccessor(key={self._key}, size={self.qsize()})"

    __repr__ = __str__


class QueueController(Generic[K]):
    """One :class:`KeyQueue` per registered key (IBind's ``QueueController``).

    ``maxsize`` bounds every queue registered afterwards (None: unbounded, IBind's behaviour).
    """

    def __init__(self, maxsize: int | None = None) -> None:
        self.maxsize = maxsize
        self._queues: dict[K, KeyQueue] = {}

    def register_queues(self, keys: K | Iterable[K]) -> None:
        """Create a queue for each key that has none (one key, or several)."""
        if isinstance(keys, str) or not isinstance(keys, Iterable):
            keys = [keys]
        for key in keys:
            if key not in self._queues:
                self._queues[key] = KeyQueue(key, self.maxsize)

    def new_queue_accessor(self, key: K) -> QueueAccessor[K]:
        """An accessor of ``key``'s queue; AttributeError if no queue is registered for it."""
        return QueueAccessor(self.get_queue(key), key)

    def get_queue(self, key: K) -> KeyQueue:
        try:
            return self._queues[key]
        except (KeyError, TypeError):
            raise AttributeError(f'Invalid queue key: "{key}", expected: {list(self._queues)}') from None

    def put_to_queue(self, key: K, data: Any) -> None:
        self.get_queue(key).put(data)


# ======================================================================================================
# IbindQueues: what the client constructs and calls
# ======================================================================================================
def queued_keys(unsolicited_channels_to_be_queued: Iterable[IbkrWsKey] | None) -> list[IbkrWsKey]:
    """The keys IBind queues: the solicited ones plus the listed unsolicited ones (TypeError for others)."""
    keys = [key for key in IbkrWsKey if key.solicited]
    for key in unsolicited_channels_to_be_queued or ():
        if not isinstance(key, IbkrWsKey):
            raise TypeError(f"unsolicited_channels_to_be_queued: expected IbkrWsKey members, got {key!r}")
        if key not in keys:
            keys.append(key)
    return keys


class IbindQueues:
    """All of the client's IBind queue logic. See the module docstring for the semantics.

    ``QueueControllerClass``: the seed parameter; rxibkr's :class:`QueueController` (the default, also
    as ``QueueController[IbkrWsKey]``) gets the fast path, any other class (IBind's own, a subclass) is
    driven through its public methods (``register_queues``, ``put_to_queue``, ``new_queue_accessor``) with
    items built when put, and bounds nothing. ``keys``: the queued keys (:func:`queued_keys`).
    ``report(kind_name, message)``: the client's error sink, called on the reader thread or on the
    thread that first reads a queue. ``maxsize``, ``idle_maxsize``: see the module docstring.
    """

    def __init__(
        self,
        QueueControllerClass: Callable[[], Any] = QueueController,
        keys: Iterable[IbkrWsKey] = (),
        report: Report | None = None,
        *,
        maxsize: int | None = DEFAULT_MAXSIZE,
        idle_maxsize: int | None = DEFAULT_IDLE_MAXSIZE,
    ) -> None:
        for name, value in (("maxsize", maxsize), ("idle_maxsize", idle_maxsize)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name}: expected a positive number of items, or None, got {value!r}")
        if idle_maxsize is not None and maxsize is not None:
            idle_maxsize = min(idle_maxsize, maxsize)
        self._maxsize = maxsize
        self._idle_maxsize = idle_maxsize
        self._read: set[IbkrWsKey] = set()  # keys whose queue has been read
        self._report = report
        self._keys = frozenset(keys)
        for key in self._keys:
            if not isinstance(key, IbkrWsKey):
                raise TypeError(f"keys: expected IbkrWsKey members, got {key!r}")
        controller = QueueControllerClass()
        self._fast = type(controller) is QueueController
        if self._fast:
            controller.maxsize = idle_maxsize  # until first read
        controller.register_queues(list(IbkrWsKey))  # like IBind: a queue for every key
        self._controller = controller
        self._accessors: dict[IbkrWsKey, Any] = {}
        # the queues put() appends to (fast path), by key
        self._queues: dict[IbkrWsKey, KeyQueue] = {}
        if self._fast:
            for key in self._keys:
                q = controller.get_queue(key)
                q._finish = _ITEM[key]
                q.next_report = _NEVER  # drops before the first read are reported at the first read
                q.silent = idle_maxsize is not None
                self._queues[key] = q
        else:
            self.put = self._put_generic  # type: ignore[method-assign]
        self._md: KeyQueue | None = self._queues.get(_MD)
        # the MARKET_DATA queue the client's reader appends to itself (None: a custom controller): the
        # reader's part of put() for a market-data message with an int conid, whose data (the dict) it
        # appends instead of the Message (it builds none when nobody observes). When the queue is
        # full, drop the oldest (q.silent: no report to check) or call overflow(q). It wakes a waiting
        # consumer (q.waiters, q.wake()) once per batch of frames, not per message.
        self.md_queue: KeyQueue | None = self._md
        # keys whose DATA messages all go to their own queue, with no further test
        self._data_queues: dict[IbkrWsKey, KeyQueue] = {
            key: q for key, q in self._queues.items() if key not in (_MD, _SYSTEM, _ERROR)
        }

    # -- reader thread ------------------------------------------------------------------------------
    def put(self, message: Message) -> None:
        """Queue ``message`` where IBind would (reader thread, every decoded message; cheap)."""
        key = message.key
        if key is _MD:  # the bulk of the traffic: only DATA messages have this key
            q = self._md
            if q is None:
                return
            data = message.data
            if data.get("conid", _MISSING).__class__ is not int and not _md_queueable(data):  # type: ignore[union-attr,arg-type]
                return
        elif message.kind is _DATA:
            q = self._data_queues.get(key)  # type: ignore[arg-type]
            if q is None:
                if key is not _SYSTEM or message.topic != "system":
                    return
                q = self._queues.get(_SYSTEM)  # only when listed
                if q is None:
                    return
        else:
            q = self._route_other(message)
            if q is None:
                return
        items = q.items
        if len(items) >= q.limit:  # full (bounded), or a backlog threshold (unbounded)
            self.overflow(q)
        items.append(message)
        if q.waiters:
            q.wake()

    def overflow(self, q: KeyQueue) -> None:
        """``q`` is at its limit: drop its oldest item (counted, reported at powers of ten) when bounded,
        or report the backlog and raise the threshold when unbounded. Reader thread."""
        if q.maxsize is None:
            self._backlog(q)
            return
        try:
            q.items.popleft()  # drop the oldest
        except IndexError:  # a reader emptied the queue meanwhile
            return
        q.dropped += 1
        if q.dropped >= q.next_report:
            self._report_drops(q)

    def _route_other(self, message: Message) -> KeyQueue | None:
        """ERROR / UNKNOWN / MALFORMED / CONTROL messages (rare)."""
        key = self.route(message)
        return None if key is None else self._queues.get(key)

    @staticmethod
    def route(message: Message) -> IbkrWsKey | None:
        """The key whose queue IBind puts ``message`` on (listed or not), or None if it queues nowhere."""
        data = message.data
        if type(data) is not dict:
            return None
        if "error" in data:
            return _ERROR
        kind = message.kind
        key = message.key
        if kind is _DATA:
            if key is _MD:
                return _MD if _md_queueable(data) else None
            if key is _SYSTEM:
                return _SYSTEM if message.topic == "system" else None
            return key
        if kind is _UNKNOWN:
            topic = data.get("topic")
            if isinstance(topic, str):
                routed = _SOLICITED_BY_CHANNEL.get(topic[1:3])
                if routed is _MD and not _md_queueable(data):
                    return None
                return routed
        return None

    def _backlog(self, q: KeyQueue) -> None:
        """maxsize=None: report a queue's backlog at 10 000, 100 000, ... unread items."""
        if len(q.items) < q.limit:  # the bound changed meanwhile (the queue was first read)
            return
        q.limit *= 10
        self._emit(f"{q.key.name} queue holds {len(q.items)} unread items (unbounded, maxsize=None)")

    def _report_drops(self, q: KeyQueue) -> None:
        """Report the 1st, 10th, 100th, ... item a full queue dropped."""
        q.next_report *= 10
        self._emit(
            f"{q.key.name} queue full ({q.maxsize} unread items): dropping the oldest; "
            f"{q.dropped} dropped so far"
        )

    def _emit(self, text: str) -> None:
        report = self._report
        if report is None:
            _LOGGER.warning("%s", text)
            return
        try:
            report("QUEUE_OVERFLOW", text)
        except Exception:  # the sink must not break the reader
            _LOGGER.exception("queue report sink raised")

    def _put_generic(self, message: Message) -> None:
        """put() for a custom QueueControllerClass: IBind's item, built now, through put_to_queue."""
        key = self.route(message)
        if key is not None and key in self._keys:
            self._controller.put_to_queue(key, ibind_item(key, message))

    # -- the seed API ----------------------------------------------------------------------------
    def _check(self, key: object) -> IbkrWsKey:
        if not isinstance(key, IbkrWsKey):
            raise TypeError(f"key: expected an IbkrWsKey, got {key!r}")
        if key not in self._keys:
            raise ValueError(
                f"key: {key} is unsolicited; list it in unsolicited_channels_to_be_queued to queue it"
            )
        if key not in self._read:
            self._first_read(key)
        return key

    def _first_read(self, key: IbkrWsKey) -> None:
        """A queue is read for the first time: give it its full bound; report what it dropped so far."""
        self._read.add(key)
        q = self._queues.get(key)
        if q is None:
            return
        maxsize = self._maxsize
        q.limit = maxsize if maxsize is not None else max(_WARN_FIRST, q.limit)
        q.maxsize = maxsize
        q.silent = False
        dropped = q.dropped
        q.next_report = 10 ** len(str(dropped)) if dropped else 1  # the next power of ten
        if dropped:
            self._emit(
                f"{key.name} queue dropped its {dropped} oldest items before it was first read "
                f"(a queue nobody reads keeps the newest {self._idle_maxsize})"
            )

    def new_queue_accessor(self, key: IbkrWsKey) -> QueueAccessor[IbkrWsKey]:
        """An accessor of ``key``'s one queue (IBind semantics: accessors share it)."""
        accessor: QueueAccessor[IbkrWsKey] = self._controller.new_queue_accessor(self._check(key))
        return accessor

    def _accessor(self, key: IbkrWsKey) -> Any:
        accessor = self._accessors.get(key)
        if accessor is None:
            accessor = self._accessors[key] = self.new_queue_accessor(key)
        return accessor

    def get(self, key: IbkrWsKey, block: bool = False, timeout: float | None = None) -> Any | None:
        """The next item of ``key``'s queue, or None (IBind's ``IbkrWsClient.get``)."""
        q = self._queues.get(self._check(key))
        if q is None:  # a custom controller: through an accessor, as IBind does
            return self._accessor(key).get(block=block, timeout=timeout)
        try:
            return q.get(block, timeout)
        except queue.Empty:
            return None

    def empty(self, key: IbkrWsKey) -> bool:
        """True if ``key``'s queue holds nothing (IBind's ``IbkrWsClient.empty``)."""
        q = self._queues.get(self._check(key))
        if q is None:
            return bool(self._accessor(key).empty())
        return not q.items

    # -- introspection ------------------------------------------------------------------------------
    @property
    def keys(self) -> frozenset[IbkrWsKey]:
        """The queued keys."""
        return self._keys

    @property
    def maxsize(self) -> int | None:
        """The bound of a queue that has been read (None: unbounded, or a custom controller)."""
        return self._maxsize if self._fast else None

    @property
    def idle_maxsize(self) -> int | None:
        """The bound of a queue nobody has read yet (None: unbounded, or a custom controller)."""
        return self._idle_maxsize if self._fast else None

    def dropped(self, key: IbkrWsKey) -> int:
        """How many items ``key``'s queue dropped because it was full (0 for custom controllers)."""
        q = self._queues.get(key)
        return q.dropped if q is not None else 0

    def qsize(self, key: IbkrWsKey) -> int:
        """How many items wait in ``key``'s queue."""
        return int(self._controller.get_queue(key).qsize())
