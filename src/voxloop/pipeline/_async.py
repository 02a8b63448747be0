"""Two small async building blocks that processors, observers and transports share.

- :class:`Mailbox`: a first-in first-out box that producers fill without waiting and one task
  drains, optionally dropping what an interruption makes stale.
- :class:`TaskSet`: the tasks one object owns; each is named, forgotten once done, and all are
  cancelled and awaited at clean-up (no fire-and-forget).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator, Set
from typing import Any, Generic, TypeVar

from ..frames import Frame

logger = logging.getLogger("voxloop")

T = TypeVar("T")


def frame_survives_interruption(frame: Frame) -> bool:
    """System and uninterruptible frames outlive an interruption; the others are dropped by it."""
    return frame.system or frame.uninterruptible


class Mailbox(Generic[T]):
    """Items in arrival order, put without waiting, taken by one draining task.

    :meth:`put` is an append and an ``Event.set``: cheap enough for a frame hop. The drainer
    waits with :meth:`wait_for_item` (then :meth:`pop`, or :meth:`take_all` for a batch), or
    with :meth:`get`. ``survives_interruption`` says which items :meth:`drop_interrupted`
    keeps (none if not given).
    """

    __slots__ = ("_items", "_ready", "_survives")

    def __init__(self, survives_interruption: Callable[[T], bool] | None = None) -> None:
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
        self._survives = survives_interruption

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def put(self, item: T) -> None:
        """Add ``item`` at the end and wake the drainer."""
        self._items.append(item)
        self._ready.set()

    def pop(self) -> T:
        """The oldest item (IndexError if there is none)."""
        return self._items.popleft()

    def take_all(self) -> list[T]:
        """Every item, oldest first, leaving the mailbox empty."""
        items = list(self._items)
        self._items.clear()
        return items

    async def wait_for_item(self) -> None:
        """Return once the mailbox holds at least one item."""
        items, ready = self._items, self._ready
        while not items:
            ready.clear()
            await ready.wait()

    async def get(self) -> T:
        """Wait for an item and take it."""
        if not self._items:
            await self.wait_for_item()
        return self._items.popleft()

    def clear(self) -> None:
        """Drop every item."""
        self._items.clear()

    def drop_interrupted(self) -> int:
        """Drop what an interruption makes stale, keeping the survivors in order; returns how many went."""
        items, survives = self._items, self._survives
        before = len(items)
        if not before:
            return 0
        kept = [item for item in items if survives(item)] if survives is not None else []
        items.clear()
        items.extend(kept)
        return before - len(kept)


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], *, timeout: float | None = None, owner: object = None
) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait until they are done; returns those still running after ``timeout``.

    The calling task is never cancelled (an owner may clean up from one of its own tasks). A task
    that ignores cancellation past ``timeout`` is logged and left behind rather than hanging
    the caller; ``timeout=None`` waits as long as it takes.
    """
    current = asyncio.current_task()
    others = {task for task in tasks if task is not current and not task.done()}
    for task in others:
        task.cancel()
    if not others:
        return set()
    _done, pending = await asyncio.wait(others, timeout=timeout)
    for task in pending:
        logger.warning("%s: task %s ignores cancellation", owner or "voxloop", task.get_name())
    return pending


class TaskSet:
    """The tasks one object owns.

    :meth:`spawn` starts a named task and keeps it until it is done; :meth:`cancel_and_wait`
    (the owner's clean-up) cancels every task and awaits them, so none outlives its owner. A task
    that fails is logged when it ends (its owner does not await it, so nobody else would see it).

    Args:
        owner: named in the warnings about tasks that will not stop.
    """

    __slots__ = ("_owner", "_tasks")

    def __init__(self, owner: object = None) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(set(self._tasks))

    def spawn(self, coroutine: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run ``coroutine`` in a new task called ``name``, owned here until it is done."""
        task = asyncio.create_task(coroutine, name=name)
        self.adopt(task)
        return task

    def adopt(self, task: asyncio.Task[Any]) -> None:
        """Own a task started elsewhere (for example one that would not stop when cancelled)."""
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("%s: task %s failed: %r", self._owner, task.get_name(), exc, exc_info=exc)

    def cancel(self) -> None:
        """Ask every task (but the caller's own) to stop, without waiting."""
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    def __contains__(self, task: object) -> bool:
        return task in self._tasks

    def _others(self, spare: Set[asyncio.Task[Any]] = frozenset()) -> set[asyncio.Task[Any]]:
        current = asyncio.current_task()
        return {task for task in self._tasks if task is not current and task not in spare}

    async def wait(self, timeout: float | None = None) -> set[asyncio.Task[Any]]:
        """Wait (at most ``timeout``) for the tasks running now to end by themselves; returns the rest."""
        tasks = self._others()
        if not tasks:
            return set()
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        return pending

    async def cancel_and_wait(
        self,
        *,
        grace_secs: float = 0.0,
        timeout: float | None = None,
        spare: Set[asyncio.Task[Any]] = frozenset(),
    ) -> set[asyncio.Task[Any]]:
        """Cancel every task (but the caller's own) and await them all.

        Args:
            grace_secs: first let them run that long to finish by themselves.
            timeout: give up on tasks that ignore cancellation after that long (logged);
                None waits as long as it takes.
            spare: tasks neither awaited nor cancelled (read at each step, so it may grow).

        Returns the tasks left running (only with a timeout).
        """
        if grace_secs > 0:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace_secs
            # Tasks started while waiting (a handler firing another event) get the same deadline.
            while (others := self._others(spare)) and (remaining := deadline - loop.time()) > 0:
                await asyncio.wait(others, timeout=remaining)
            for task in self._others(spare):
                logger.warning("%s: %s still running; cancelling it", self._owner, task.get_name())
        return await cancel_and_wait(self._others(spare), timeout=timeout, owner=self._owner)


__all__ = ["Mailbox", "TaskSet", "cancel_and_wait", "frame_survives_interruption"]
