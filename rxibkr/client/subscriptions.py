"""Desired subscriptions: what the client keeps subscribed across reconnects.

A :class:`Subscription` is a reactivex Disposable whose ``dispose()`` sends the unsubscribe payload
exactly once, and is truthy iff the gateway confirmed it, so the seed's ``if client.subscribe(...)``
keeps working. Its status is only changed on the client's control scheduler.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reactivex import abc
from reactivex.disposable import Disposable

from rxibkr.protocol import IbkrWsKey, SubscriptionProcessor

if TYPE_CHECKING:
    from rxibkr.client.core import IbkrWsClient


class SubscriptionStatus(enum.Enum):
    PENDING = "pending"  # wanted; not sent yet (no session) or sent and awaiting confirmation
    ACTIVE = "active"  # confirmed by the gateway (or sent, where the channel confirms nothing)
    FAILED = "failed"  # never confirmed after every retry; reported on client.errors; retried on reconnect
    UNSUBSCRIBED = "unsubscribed"  # disposed: the unsubscribe payload was sent; never replayed


def split_channel(channel: str) -> tuple[IbkrWsKey, str]:
    """``'md+265598@SMART'`` -> (MARKET_DATA, ``'md+265598'``): the key, and the channel as topics echo it."""
    if not isinstance(channel, str) or not channel:
        raise TypeError(f"channel: expected a non-empty str such as 'md+265598', got {channel!r}")
    head, sep, rest = channel.partition("+")
    key = IbkrWsKey.from_channel(head)
    if not key.solicited:
        raise ValueError(f"channel: {head!r} is unsolicited; observe it with client.observe({key}) instead")
    if not sep:
        return key, head
    parts = rest.split("+")
    if key in (IbkrWsKey.MARKET_DATA, IbkrWsKey.MARKET_HISTORY):
        parts[0] = parts[0].split("@", 1)[0]
    return key, head + "+" + "+".join(parts)


class SubscriptionState:
    """One server subscription of the client (one per channel), shared by every handle on it.

    Internal: the client keeps these across reconnects and changes them on its control scheduler
    only. Users hold :class:`Subscription` handles.
    """

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
        self.attempts = 0
        self.retry_timer: abc.DisposableBase | None = None
        self.handles: list[Subscription] = []
        self._status = SubscriptionStatus.PENDING
        self._settled = threading.Event()
        self._listeners: list[Callable[[SubscriptionStatus], None]] = []

    @property
    def status(self) -> SubscriptionStatus:
        return self._status

    @property
    def active(self) -> bool:
        return self._status is SubscriptionStatus.ACTIVE

    def __bool__(self) -> bool:
        return self._status is SubscriptionStatus.ACTIVE

    def __repr__(self) -> str:
        return f"SubscriptionState({self.channel!r}, {self._status.value}, handles={len(self.handles)})"

    def wait(self, timeout: float | None = None) -> bool:
        self._settled.wait(timeout)
        return self.active

    def on_status(self, listener: Callable[[SubscriptionStatus], None]) -> abc.DisposableBase:
        """Call ``listener`` (on the control scheduler) each time the status changes; dispose to stop."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return Disposable(remove)

    # -- control scheduler only ---------------------------------------------------------------
    def set_status(self, status: SubscriptionStatus) -> None:
        if status is self._status:
            return
        self._status = status
        if status is SubscriptionStatus.PENDING:
            self._settled.clear()
        else:
            self._settled.set()
        for listener in tuple(self._listeners):
            listener(status)

    def cancel_retry(self) -> None:
        if self.retry_timer is not None:
            self.retry_timer.dispose()
            self.retry_timer = None


class Subscription(abc.DisposableBase):
    """A handle on one server subscription, as ``client.subscribe(...)`` returns it.

    Every call returns its own handle; handles on the same channel share the server subscription,
    which is unsubscribed when the last handle is disposed (``dispose()`` is idempotent), or at once
    by ``client.unsubscribe(channel)``. ``bool(sub)`` is "confirmed by the gateway", so the seed's
    ``if client.subscribe(...)`` keeps working.
    """

    __slots__ = ("_client", "_listeners", "_released", "server")

    def __init__(self, client: IbkrWsClient, server: SubscriptionState) -> None:
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
        """Call ``listener`` (on the control scheduler) each time the status changes, until this
        handle is disposed (it then hears UNSUBSCRIBED once) or the returned Disposable is."""
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
            self._client._dispose_subscription(self)

    # -- control scheduler only ---------------------------------------------------------------
    def release(self) -> bool:
        """Detach from the server subscription; True when this was the last handle on it."""
        if self._released:
            return False
        self._released = True
        server = self.server
        if self in server.handles:
            server.handles.remove(self)
        listeners, self._listeners = self._listeners, []
        for listener, remover in listeners:
            remover.dispose()
            listener(SubscriptionStatus.UNSUBSCRIBED)
        return not server.handles
