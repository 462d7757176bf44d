"""asyncio bridges: ``aiter`` (async for, bounded or not, explicit overflow) and ``on_loop``."""

from __future__ import annotations

import asyncio
import threading
from contextlib import aclosing
from typing import Any

import pytest
import reactivex
from reactivex.subject import Subject

from rxibkr.streams.aio import QueueOverflowError, aiter, on_loop


def produce(
    subject: Subject[Any], items: list[Any], *, complete: bool = True, error: Exception | None = None
) -> None:
    """Emit from another thread, as the client's reader thread does."""

    def run() -> None:
        for item in items:
            subject.on_next(item)
        if error is not None:
            subject.on_error(error)
        elif complete:
            subject.on_completed()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def test_async_for_over_a_cold_observable() -> None:
    async def main() -> list[int]:
        return [x async for x in aiter(reactivex.of(1, 2, 3))]

    assert asyncio.run(main()) == [1, 2, 3]


def test_values_from_another_thread_arrive_in_order() -> None:
    async def main() -> list[int]:
        subject: Subject[int] = Subject()
        it = aiter(subject)
        out: list[int] = []

        async def consume() -> None:
            async for x in it:
                out.append(x)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)  # the iteration subscribes on its first __anext__
        await asyncio.to_thread(produce, subject, list(range(1000)))
        await asyncio.wait_for(task, 5)
        return out

    assert asyncio.run(main()) == list(range(1000))


def test_bounded_queue_drop_policies_count_what_they_drop() -> None:
    async def run(overflow: Any) -> tuple[list[int], int]:
        subject: Subject[int] = Subject()
        it = aiter(subject, maxsize=3, overflow=overflow)
        first = asyncio.create_task(it.__anext__())
        await asyncio.sleep(0.01)
        subject.on_next(0)
        assert await first == 0
        produce(subject, [1, 2, 3, 4, 5])  # nobody consumes meanwhile
        assert it.queued == 3
        rest = [x async for x in it]
        return rest, it.dropped

    assert asyncio.run(run("drop_oldest")) == ([3, 4, 5], 2)
    assert asyncio.run(run("drop_newest")) == ([1, 2, 3], 2)


def test_bounded_queue_overflow_error_is_raised_not_hidden() -> None:
    async def main() -> list[int]:
        subject: Subject[int] = Subject()
        it = aiter(subject, maxsize=2)
        got: list[int] = []
        first = asyncio.create_task(it.__anext__())
        await asyncio.sleep(0.01)
        produce(subject, [1, 2, 3, 4], complete=False)
        got.append(await first)
        with pytest.raises(QueueOverflowError, match="queue is full"):
            async for x in it:
                got.append(x)
        assert not subject.observers  # unsubscribed
        return got

    assert asyncio.run(main()) == [1, 2]  # what was queued (3 did not fit), then the error


def test_errors_are_raised_by_the_iteration_and_aclose_disposes() -> None:
    async def main() -> None:
        subject: Subject[int] = Subject()
        it = aiter(subject)
        task = asyncio.create_task(it.__anext__())
        await asyncio.sleep(0.01)
        produce(subject, [7], error=ValueError("boom"))
        assert await task == 7
        with pytest.raises(ValueError, match="boom"):
            await it.__anext__()
        with pytest.raises(StopAsyncIteration):
            await it.__anext__()

        other: Subject[int] = Subject()
        async with aclosing(aiter(other)) as it2:
            task = asyncio.create_task(it2.__anext__())
            await asyncio.sleep(0.01)
            assert other.observers
            other.on_next(1)
            assert await task == 1
        assert not other.observers

    asyncio.run(main())


def test_cancelling_a_waiting_iteration_leaves_it_usable() -> None:
    async def main() -> int:
        subject: Subject[int] = Subject()
        it = aiter(subject)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(it.__anext__(), 0.02)
        subject.on_next(5)
        value = await asyncio.wait_for(it.__anext__(), 1)
        await it.aclose()
        return value

    assert asyncio.run(main()) == 5


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        aiter(reactivex.empty(), maxsize=-1)
    with pytest.raises(ValueError, match="overflow"):
        aiter(reactivex.empty(), maxsize=1, overflow="block")  # type: ignore[arg-type]


def test_on_loop_delivers_on_the_loop_thread() -> None:
    async def main() -> tuple[list[int], set[int]]:
        loop_thread = threading.get_ident()
        subject: Subject[int] = Subject()
        seen: list[int] = []
        threads: set[int] = set()
        done = asyncio.Event()

        def on_next(x: int) -> None:
            threads.add(threading.get_ident())
            seen.append(x)

        subject.pipe(on_loop()).subscribe(on_next, on_completed=done.set)
        await asyncio.to_thread(produce, subject, [1, 2, 3])
        await asyncio.wait_for(done.wait(), 5)
        assert threads == {loop_thread}
        return seen, threads

    seen, _ = asyncio.run(main())
    assert seen == [1, 2, 3]
