"""A clock that only moves when a test says so."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class FakeClock:
    """Implements :class:`voxloop.pipeline.Clock`; time advances only through :meth:`advance`.

    ``await clock.advance(5)`` moves time forward in order through every sleeper's deadline,
    letting each woken task run before moving on, so timers fire exactly as they would have.
    """

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self._now = start_ns
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now_ns(self) -> int:
        return self._now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._now + max(0, int(seconds * 1e9))
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting (cancelled ones excluded)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking sleepers in deadline order.

        Whatever is ready to run at the current time runs first.
        """
        await settle()
        target = self._now + int(seconds * 1e9)
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not future.done():
                future.set_result(None)
                await settle()
        self._now = target
        await settle()


#: Turns after which :func:`settle` stops even if something is still ready (a task that never waits).
MAX_SETTLE_TURNS = 10_000


async def settle(rounds: int = 20) -> None:
    """Let every task that is ready run until things go quiet (event-loop turns, not time).

    At least ``rounds`` turns, then more for as long as work is still queued on the loop when
    this task gets its turn (a chain of wake-ups longer than ``rounds`` runs to its end), up to
    :data:`MAX_SETTLE_TURNS`. What waits for I/O or a thread is not waited for.
    """
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)  # the loop's run queue (asyncio's own loops have one)
    for _ in range(rounds):
        await asyncio.sleep(0)
    if ready is None:
        return
    for _ in range(MAX_SETTLE_TURNS):
        if not ready:
            return
        await asyncio.sleep(0)
