"""IBind-style queues over the per-key streams (seed compatibility).

``QueueController[K]`` owns, per key, the queues of its accessors; every accessor receives every item
of its key put after the accessor was created (fan-out, unbounded: nothing is dropped).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

K = TypeVar("K")


class QueueAccessor(Generic[K]):
    """Access to one queue and the key it belongs to (IBind's ``QueueAccessor``)."""

    __slots__ = ("_key", "_queue")

    def __init__(self, queue_: queue.Queue[Any], key: K) -> None:
        self._queue = queue_
        self._key = key

    @property
    def key(self) -> K:
        return self._key

    def get(self, block: bool = False, timeout: float | None = None) -> Any | None:
        """The next item, or None when none arrives (immediately, or within ``timeout`` when ``block``)."""
        try:
            return self._queue.get(block=block, timeout=timeout)
        except queue.Empty:
            return None

    def empty(self) -> bool:
        return self._queue.empty()

    def qsize(self) -> int:
        return self._queue.qsize()

    def __repr__(self) -> str:
        return f"QueueAccessor[{self._key}]"


class QueueController(Generic[K]):
    """Holds the accessors' queues per key and fans items out to them."""

    def __init__(self) -> None:
        self._queues: dict[K, tuple[queue.Queue[Any], ...]] = {}
        self._lock = threading.Lock()

    def register_queues(self, keys: Iterable[K]) -> None:
        with self._lock:
            for key in keys:
                self._queues.setdefault(key, ())

    def new_queue_accessor(self, key: K) -> QueueAccessor[K]:
        with self._lock:
            if key not in self._queues:
                raise KeyError(f"no queue registered for key {key!r}")
            new_queue: queue.Queue[Any] = queue.Queue()
            self._queues[key] = (*self._queues[key], new_queue)
        return QueueAccessor(new_queue, key)

    def put_to_queue(self, key: K, item: Any) -> None:
        for target in self._queues.get(key, ()):
            target.put(item)

    def get(self, key: K, block: bool = False, timeout: float | None = None) -> Any | None:
        """Legacy single-queue access: the first accessor's queue of ``key``."""
        queues = self._queues.get(key)
        if not queues:
            return None
        return QueueAccessor(queues[0], key).get(block, timeout)

    def empty(self, key: K) -> bool:
        queues = self._queues.get(key)
        return not queues or queues[0].empty()
