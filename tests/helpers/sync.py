"""Wait until a pipeline has handled what a test sent, instead of counting event-loop turns."""

from __future__ import annotations

from dataclasses import dataclass

from voxloop.frames import ControlFrame, Frame, UninterruptibleFrame
from voxloop.testing import PipelineHarness


@dataclass(eq=False)
class Mark(ControlFrame, UninterruptibleFrame):
    """A frame no processor reacts to: once it comes out, everything sent before it was handled."""


async def through(harness: PipelineHarness, *frames: Frame) -> None:
    """Push ``frames`` downstream, then return once a mark sent after them came out at the bottom."""
    count = len(harness.down_recorder.of_type(Mark)) + 1
    await harness.push(*frames, Mark())
    await harness.down_recorder.wait_for(Mark, count=count)


async def through_up(harness: PipelineHarness, *frames: Frame) -> None:
    """Send ``frames`` upstream from below, then return once a mark sent after them came out on top."""
    count = len(harness.up_recorder.of_type(Mark)) + 1
    await harness.push_up(*frames, Mark())
    await harness.up_recorder.wait_for(Mark, count=count)
