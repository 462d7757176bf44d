"""The driver: runs the session machine on the client's control loop and executes its actions.

Every event (a user request, a control frame, a timer, a REST result, a connection opening or
closing) is appended to one inbox and handled in order on the control scheduler, one at a time: an
event posted while another is being handled (a state observer calling ``subscribe``) waits its turn
instead of running inside it. No lock is held while an action reaches user code (state and error
observers, status listeners). With a virtual-time scheduler the inbox is drained inline by whoever
posts, so tests stay deterministic.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from reactivex import abc

from rxibkr.client.events import ErrorEvent
from rxibkr.io.transport import ConnectionClosedError, ConnectOptions
from rxibkr.protocol import requests as rq
from rxibkr.session import events as ev
from rxibkr.session.machine import SessionMachine

if TYPE_CHECKING:
    from rxibkr.client.core import IbkrWsClient, _Reader

_LOGGER = logging.getLogger(__name__)


class Driver:
    """One client's control loop: the inbox, the machine, the timers, the connections."""

    def __init__(self, client: IbkrWsClient, machine: SessionMachine) -> None:
        self.client = client
        self.machine = machine
        self._inbox: deque[ev.Event | Callable[[], None]] = deque()
        self._flag = threading.Lock()
        self._scheduled = False
        self._draining = False
        self._timers: dict[str, abc.DisposableBase] = {}
        self.readers: dict[int, _Reader] = {}  # live connections by machine connection id
        self.retired: list[_Reader] = []  # closed connections whose threads may still run
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.control_thread: threading.Thread | None = None
        self.finished = threading.Event()  # set once the machine stopped for good

    # =============================================================================================
    # the inbox
    # =============================================================================================
    def post(self, event: ev.Event | Callable[[], None]) -> None:
        """Handle ``event`` on the control loop, after every event posted before it."""
        self._inbox.append(event)
        self.kick()

    def enqueue(self, event: ev.Event) -> None:
        """Append ``event`` without starting the loop (a caller holding a lock calls ``kick()`` after
        releasing it: in virtual time the loop runs inline, and may reach user code)."""
        self._inbox.append(event)

    def kick(self) -> None:
        """Make sure the control loop handles what is in the inbox."""
        client = self.client
        if client._virtual:
            if not self._draining:
                self._drain()
            return
        with self._flag:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            client._scheduler.schedule(self._run)
        except Exception as exc:  # the control loop is gone: the client is shut down
            with self._flag:
                self._scheduled = False
            _LOGGER.debug("control loop gone; %d events dropped (%r)", len(self._inbox), exc)
            while self._inbox:  # release whoever waits on a barrier
                item = self._inbox.popleft()
                if callable(item):
                    item()

    def _run(self, _scheduler: Any = None, _state: Any = None) -> None:
        self.control_thread = threading.current_thread()
        inbox = self._inbox
        while True:
            with self._flag:
                if not inbox:
                    self._scheduled = False
                    return
            self._handle(inbox.popleft())

    def _drain(self) -> None:
        self._draining = True
        try:
            while self._inbox:
                self._handle(self._inbox.popleft())
        finally:
            self._draining = False

    def on_control_thread(self) -> bool:
        return self.control_thread is threading.current_thread()

    def _handle(self, event: ev.Event | Callable[[], None]) -> None:
        try:
            if callable(event):  # a deferred call (events are plain data, never callable)
                event()
                return
            actions = self.machine.handle(event)
            if isinstance(event, ev.Closed):
                self.readers.pop(event.conn, None)  # its reader thread is ending
            for action in actions:
                self._execute(action)
            if isinstance(event, ev.Release):
                self._notify_released(event.handle)
        except Exception as exc:  # never kill the control loop
            _LOGGER.exception("control: handling %r failed", type(event).__name__)
            self.client._errors.on_next(
                ErrorEvent(ev.ErrorKind.OBSERVER_ERROR, f"internal error handling {event!r}: {exc!r}", exc)
            )

    # =============================================================================================
    # actions
    # =============================================================================================
    def _execute(self, action: ev.Action) -> None:
        handler = _EXECUTORS[type(action)]
        handler(self, action)

    def _open(self, action: ev.Open) -> None:
        client = self.client
        options = ConnectOptions(
            url=client._url,
            timeout=client._timeout,
            ssl_context=client._ssl_context,
            cookie_provider=client._cookie if client._rest is not None else None,
            url_provider=client._socket_url_provider(),
        )
        reader = client._new_reader(action.conn)
        self.readers[action.conn] = reader
        connection = client._transport.open(options, reader)
        reader.connection = connection
        self.retired = [r for r in self.retired if not r.finished()]
        start = getattr(connection, "start", None)
        if callable(start):  # an unstarted connection: no callback can come before it is recorded
            start()

    def _close(self, action: ev.Close) -> None:
        reader = self.readers.pop(action.conn, None)
        if reader is None:
            return
        reader.closing = True
        self.retired.append(reader)
        if reader.connection is not None:
            reader.connection.close(action.code, "")

    def _send(self, action: ev.Send) -> None:
        self.send(action.conn, action.payload)

    def send(self, conn: int, payload: str) -> None:
        reader = self.readers.get(conn)
        if reader is None or reader.connection is None:
            return
        client = self.client
        if client._log_raw:
            _LOGGER.debug("send: %s", client._for_log(payload))
        try:
            reader.connection.send(payload)
        except ConnectionClosedError as exc:
            _LOGGER.debug("send failed: %s", exc)
            return
        client._wire_out(payload, reader.connection)

    def _send_session(self, action: ev.SendSession) -> None:
        session_id = self.client._session_id
        if session_id:
            self.send(action.conn, rq.session(session_id))

    def _ping(self, action: ev.Ping) -> None:
        reader = self.readers.get(action.conn)
        if reader is not None and reader.connection is not None:
            reader.connection.ping()

    def _set_timer(self, action: ev.SetTimer) -> None:
        old = self._timers.pop(action.name, None)
        if old is not None:
            old.dispose()
        fired = ev.TimerFired(action.name, action.token)
        scheduler = self.client._scheduler
        if action.periodic:
            periodic = cast(abc.PeriodicSchedulerBase, scheduler)
            self._timers[action.name] = periodic.schedule_periodic(action.delay, lambda _s: self.post(fired))
        else:
            name = action.name
            holder: list[abc.DisposableBase] = []

            def fire(*_: Any) -> None:
                if holder and self._timers.get(name) is holder[0]:
                    del self._timers[name]  # fired: nothing left to cancel
                self.post(fired)

            holder.append(scheduler.schedule_relative(action.delay, fire))
            self._timers[name] = holder[0]

    def _cancel_timer(self, action: ev.CancelTimer) -> None:
        timer = self._timers.pop(action.name, None)
        if timer is not None:
            timer.dispose()

    def _set_state(self, action: ev.SetState) -> None:
        _LOGGER.info("state: %s", action.state.value)
        self.client._state.on_next(action.state)

    def _report(self, action: ev.Report) -> None:
        client = self.client
        message = client._redact(action.message) if action.redact else action.message
        _LOGGER.warning("%s: %s", action.kind.value, client._for_log(message))
        event = ErrorEvent(action.kind, message, action.exception, action.payload)
        client._last_error = event
        client._errors.on_next(event)

    def _warn(self, action: ev.Warn) -> None:
        _LOGGER.warning("%s", action.message)

    def _status(self, action: ev.Status) -> None:
        self.client._on_status(action.token, action.status)

    def _await(self, action: ev.Await) -> None:
        self.client._awaiting[action.channel] = True

    def _unawait(self, action: ev.Unawait) -> None:
        if action.channel is None:
            self.client._awaiting.clear()
        else:
            self.client._awaiting.pop(action.channel, None)

    def _rest(self, action: ev.Rest) -> None:
        rest = self.client._rest
        what = action.what
        if rest is None:
            return
        call: Callable[[], Any]
        if what in ("auth_status", "auth_poll"):
            if not callable(getattr(rest, "auth_status", None)):
                return
            call = rest.auth_status
        elif what == "tickle":
            call = rest.tickle
        elif what == "preflight":

            def call() -> Any:
                rest.live_orders(force=True)
                return rest.live_orders()

        else:  # pragma: no cover - the machine asks for nothing else
            return

        def done(ok: bool, value: Any) -> None:
            self.post(ev.RestDone(what, action.conn, ok, value, action.channel))

        self.run_blocking(call, done)

    def run_blocking(self, fn: Callable[[], Any], done: Callable[[bool, Any], None]) -> None:
        """Run a blocking call (REST) off the control loop; ``done(ok, value)`` is called after it
        (inline in virtual time, so tests stay deterministic)."""
        if self.client._virtual:
            try:
                value = fn()
            except Exception as exc:
                done(False, exc)
            else:
                done(True, value)
            return
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="rxibkr-rest"
            )

        def finished(future: concurrent.futures.Future[Any]) -> None:
            exc = future.exception()
            done(exc is None, exc if exc is not None else future.result())

        try:
            self._executor.submit(fn).add_done_callback(finished)
        except RuntimeError:  # executor shut down
            pass

    def _start_done(self, action: ev.StartDone) -> None:
        self.client._on_start_done(action.ok)

    def _unsubscribe_done(self, action: ev.UnsubscribeDone) -> None:
        finish = action.finish
        if callable(finish):
            finish(action.ok)

    def _stopped(self, _action: ev.Stopped) -> None:
        for timer in self._timers.values():
            timer.dispose()
        self._timers.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self.client._finish()
        self.finished.set()

    def _notify_released(self, handle: Any) -> None:
        for listener, remover in handle.take_listeners():
            remover.dispose()
            try:
                listener(ev.SubscriptionStatus.UNSUBSCRIBED)
            except Exception as exc:
                self.client._on_observer_error(exc, handle)

    def shutdown_executor(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


_EXECUTORS: dict[type, Callable[[Driver, Any], None]] = {
    ev.Open: Driver._open,
    ev.Close: Driver._close,
    ev.Send: Driver._send,
    ev.SendSession: Driver._send_session,
    ev.Ping: Driver._ping,
    ev.SetTimer: Driver._set_timer,
    ev.CancelTimer: Driver._cancel_timer,
    ev.SetState: Driver._set_state,
    ev.Report: Driver._report,
    ev.Warn: Driver._warn,
    ev.Status: Driver._status,
    ev.Await: Driver._await,
    ev.Unawait: Driver._unawait,
    ev.Rest: Driver._rest,
    ev.StartDone: Driver._start_done,
    ev.UnsubscribeDone: Driver._unsubscribe_done,
    ev.Stopped: Driver._stopped,
}
