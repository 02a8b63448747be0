"""Clocks: where a pipeline reads the time and sleeps, so tests can replace time itself."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """A monotonic clock a pipeline can sleep on (see ``voxloop.testing.FakeClock`` for tests)."""

    def now_ns(self) -> int:
        """Monotonic time in nanoseconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real monotonic clock."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
