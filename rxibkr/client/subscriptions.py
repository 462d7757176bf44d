"""Subscription handles: what ``client.subscribe(...)`` returns, and the status they share.

A :class:`Subscription` is a reactivex Disposable whose ``dispose()`` releases its share of the
server subscription (the last handle's release sends the unsubscribe payload, exactly once), and is
truthy iff the gateway confirmed it, so the seed's ``if client.subscribe(...)`` keeps working. The
session machine (:mod:`rxibkr.session`) decides every status; the client's driver publishes it here
on the control loop, never while a library lock is held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import Disposable

from rxibkr.protocol import IbkrWsKey, Message, MessageKind, SubscriptionProcessor
from rxibkr.session.events import SubscriptionStatus
from rxibkr.session.registry import split_channel, union_data


class _Owner(Protocol):
    """The client a handle belongs to (``IbkrWsClient``, or ``rxibkr.remote.RemoteClient``)."""

    def _release(self, handle: Subscription) -> None: ...


# Guards every state's listener tuple and the creation of its wait event: both are rare (an
# ``on_status`` call, a blocking ``wait``), so one lock for all of them, not one (and an Event,
# ~1 KiB with its Condition) per subscription.
_SHARED_LOCK = threading.Lock()


def _is_own_union(data: dict[str, Any] | None) -> bool:
    """``union_data([data])`` would equal ``data`` (its fields, if a list, already deduplicated)."""
    if data is None:
        return True
    fields = data.get("fields")
    if isinstance(fields, tuple):
        return False
    return not isinstance(fields, list) or len({str(f) for f in fields}) == len(fields)


class SubscriptionState:
    """One server subscription of the client (one per channel), shared by every handle on it.

    ``data`` is what the subscription carries: for market data the union of the handles' fields.
    Users hold :class:`Subscription` handles; ``client.subscriptions`` shows these.
    """

    __slots__ = (
        "__weakref__",
        "_listeners",
        "_settled",
        "_status",
        "channel",
        "data",
        "key",
        "match_channel",
        "needs_confirmation",
        "processor",
        "requests",
    )

    def __init__(
        self,
        channel: str,
        data: dict[str, Any] | None,
        needs_confirmation: bool,
        processor: SubscriptionProcessor,
    ) -> None:
        self.key, self.match_channel = split_channel(channel)
        self.channel = channel
        self.data = data
        self.needs_confirmation = needs_confirmation
        self.processor = processor
        self.requests: dict[Subscription, dict[str, Any] | None] = {}  # handle -> its request, in order
        self._status = SubscriptionStatus.PENDING
        self._settled: threading.Event | None = None  # created by the first wait() (lazily: rare)
        self._listeners: tuple[Callable[[SubscriptionStatus], None], ...] = ()

    @property
    def handles(self) -> list[Subscription]:
        """The handles on this subscription, oldest first (a copy)."""
        return list(self.requests)

    @property
    def status(self) -> SubscriptionStatus:
        return self._status

    @property
    def active(self) -> bool:
        return self._status is SubscriptionStatus.ACTIVE

    def __bool__(self) -> bool:
        return self._status is SubscriptionStatus.ACTIVE

    def __repr__(self) -> str:
        return f"SubscriptionState({self.channel!r}, {self._status.value}, handles={len(self.requests)})"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the status is settled (not PENDING) or ``timeout`` passed; True iff active."""
        if self._status is SubscriptionStatus.PENDING:
            with _SHARED_LOCK:  # set_status reads the event under the same lock: no lost wake-up
                event = self._settled
                if event is None:
                    event = self._settled = threading.Event()
                    if self._status is not SubscriptionStatus.PENDING:
                        event.set()
            event.wait(timeout)
        return self.active

    def on_status(self, listener: Callable[[SubscriptionStatus], None]) -> abc.DisposableBase:
        """Call ``listener`` (on the control loop) each time the status changes; dispose to stop."""
        with _SHARED_LOCK:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with _SHARED_LOCK:
                listeners = list(self._listeners)
                if listener in listeners:
                    listeners.remove(listener)
                    self._listeners = tuple(listeners)

        return Disposable(remove)

    # -- the client's registry lock held --------------------------------------------------------
    def add_request(self, handle: Subscription, data: dict[str, Any] | None) -> None:
        requests = self.requests
        requests[handle] = data
        if self.key is IbkrWsKey.MARKET_DATA and (len(requests) > 1 or not _is_own_union(data)):
            self.data = union_data(list(requests.values()))
        else:  # one request that is its own union: kept as it is, not copied
            self.data = data

    def remove_request(self, handle: Subscription) -> bool:
        """Forget ``handle``; True when it was the last one."""
        self.requests.pop(handle, None)
        return not self.requests

    # -- the control loop only ----------------------------------------------------------------
    def set_status(self, status: SubscriptionStatus) -> None:
        if status is self._status:
            return
        with _SHARED_LOCK:
            self._status = status
            event = self._settled
            if event is not None:
                if status is SubscriptionStatus.PENDING:
                    event.clear()
                else:
                    event.set()
        for listener in self._listeners:
            listener(status)


class Subscription(abc.DisposableBase):
    """A handle on one server subscription, as ``client.subscribe(...)`` returns it.

    Every call returns its own handle; handles on the same channel share the server subscription,
    which is unsubscribed when the last handle is disposed (``dispose()`` is idempotent), or at once
    by ``client.unsubscribe(channel)``. ``bool(sub)`` is "confirmed by the gateway", so the seed's
    ``if client.subscribe(...)`` keeps working.
    """

    __slots__ = ("__weakref__", "_client", "_listeners", "_released", "server")

    def __init__(self, client: _Owner, server: SubscriptionState) -> None:
        self._client = client
        self.server = server
        self._released = False
        self._listeners: list[tuple[Callable[[SubscriptionStatus], None], abc.DisposableBase]] = []

    @property
    def channel(self) -> str:
        return self.server.channel

    @property
    def key(self) -> IbkrWsKey:
        return self.server.key

    @property
    def data(self) -> dict[str, Any] | None:
        return self.server.data

    @property
    def needs_confirmation(self) -> bool:
        return self.server.needs_confirmation

    @property
    def processor(self) -> SubscriptionProcessor:
        return self.server.processor

    @property
    def status(self) -> SubscriptionStatus:
        return SubscriptionStatus.UNSUBSCRIBED if self._released else self.server.status

    @property
    def active(self) -> bool:
        return self.status is SubscriptionStatus.ACTIVE

    def __bool__(self) -> bool:
        return self.status is SubscriptionStatus.ACTIVE

    def __repr__(self) -> str:
        return f"Subscription({self.channel!r}, {self.status.value})"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until confirmed or failed (at most ``timeout`` seconds); True iff active."""
        if self._released:
            return False
        self.server.wait(timeout)
        return self.active

    def on_status(self, listener: Callable[[SubscriptionStatus], None]) -> abc.DisposableBase:
        """Call ``listener`` (on the control loop) each time the status changes, until this handle
        is disposed (it then hears UNSUBSCRIBED once) or the returned Disposable is."""
        server_remover = self.server.on_status(listener)
        entry = (listener, server_remover)
        self._listeners.append(entry)

        def remove() -> None:
            server_remover.dispose()
            if entry in self._listeners:
                self._listeners.remove(entry)

        return Disposable(remove)

    def dispose(self) -> None:
        if not self._released:
            self._client._release(self)

    # -- the client only ------------------------------------------------------------------------
    def mark_released(self) -> bool:
        """Detach this handle (the client's registry lock held); False if it already was."""
        if self._released:
            return False
        self._released = True
        return True

    def take_listeners(self) -> list[tuple[Callable[[SubscriptionStatus], None], abc.DisposableBase]]:
        listeners, self._listeners = self._listeners, []
        return listeners


def channel_stream(
    source: Observable[Message],
    subscribe: Callable[[], abc.DisposableBase],
    channel: str,
) -> Observable[Message]:
    """The data messages of ``channel`` from its key's ``source``, cold and reference-counted: each
    observer takes a handle (``subscribe()``), whose release (the last one sends the unsubscribe)
    comes with the observer's disposal. ``IbkrWsClient.channel`` and ``RemoteClient.channel``."""
    topic = "s" + split_channel(channel)[1]
    prefix = topic + "+"
    data_kind = MessageKind.DATA

    def matches(message: Message) -> bool:
        t = message.topic
        return message.kind is data_kind and t is not None and (t == topic or t.startswith(prefix))

    def on_subscribe(
        observer: abc.ObserverBase[Message], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        inner = source.pipe(ops.filter(matches)).subscribe(observer, scheduler=scheduler)
        handle = subscribe()  # one handle per observer

        def release() -> None:
            inner.dispose()
            handle.dispose()

        return Disposable(release)

    return reactivex.create(on_subscribe)


__all__ = ["Subscription", "SubscriptionState", "SubscriptionStatus", "channel_stream", "split_channel"]
