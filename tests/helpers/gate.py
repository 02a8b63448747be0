"""A processor that holds frames until the test lets them go."""

from __future__ import annotations

import asyncio

from voxloop.frames import Frame
from voxloop.pipeline import FrameDirection, FrameProcessor


class Gate(FrameProcessor):
    """A queued processor that holds each frame of ``hold_types`` until the test opens the gate.

    Records which frames were started, finished and cancelled so tests can see in-flight work.
    """

    def __init__(self, *hold_types: type[Frame], queued: bool = True) -> None:
        super().__init__(queued=queued)
        self.hold_types = hold_types
        self.entered: list[Frame] = []
        self.finished: list[Frame] = []
        self.cancelled: list[Frame] = []
        self.opened = asyncio.Event()
        self.holding = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, self.hold_types):
            self.entered.append(frame)
            self.holding.set()
            try:
                await self.opened.wait()
            except asyncio.CancelledError:
                self.cancelled.append(frame)
                raise
            self.finished.append(frame)
        await self.push_frame(frame, direction)
