"""ParallelPipeline: every frame goes through several branches side by side, and leaves once."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence

from ..frames import CancelFrame, EndFrame, Frame, StartFrame, StopFrame
from .pipeline import Pipeline
from .processor import DOWNSTREAM, UPSTREAM, FrameDirection, FrameProcessor, FrameProcessorSetup

_LIFECYCLE = (StartFrame, EndFrame, StopFrame, CancelFrame)


class _BranchEnd(FrameProcessor):
    """Bookends a branch: what leaves the branch through it goes back to the parallel pipeline."""

    def __init__(self, owner: ParallelPipeline, leaving: FrameDirection, name: str) -> None:
        super().__init__(name=name)
        self._owner = owner
        self._leaving = leaving

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is self._leaving:
            await self._owner._leave(frame, direction)
        else:
            await self.push_frame(frame, direction)


class ParallelPipeline(FrameProcessor):
    """Sends each frame into every branch; whatever comes out is passed on.

    A frame that several branches let through leaves once. Start, End, Stop and Cancel leave
    only after every branch has handled them; frames the branches produce while the StartFrame
    is still on its way through the others wait, so that the StartFrame leaves first.

    Which frames already left is kept in weak maps: an entry disappears with its frame, so a long
    call does not grow memory.

    Args:
        branches: each a list of processors (or a processor).
    """

    def __init__(self, *branches: Sequence[FrameProcessor] | FrameProcessor, name: str | None = None):
        super().__init__(name=name)
        if not branches:
            raise ValueError("ParallelPipeline needs at least one branch")
        self._tops: list[_BranchEnd] = []
        self._bottoms: list[_BranchEnd] = []
        self._branches: list[Pipeline] = []
        for index, branch in enumerate(branches):
            members = [branch] if isinstance(branch, FrameProcessor) else list(branch)
            top = _BranchEnd(self, UPSTREAM, f"{self.name}::branch{index}::top")
            bottom = _BranchEnd(self, DOWNSTREAM, f"{self.name}::branch{index}::bottom")
            self._branches.append(Pipeline([top, *members, bottom], name=f"{self.name}::branch{index}"))
            self._tops.append(top)
            self._bottoms.append(bottom)
        # frame -> True once it left (fanned-out frames only); lifecycle frame -> branches to go.
        self._left: weakref.WeakKeyDictionary[Frame, bool] = weakref.WeakKeyDictionary()
        self._waiting: weakref.WeakKeyDictionary[Frame, int] = weakref.WeakKeyDictionary()
        self._held: list[tuple[Frame, FrameDirection]] | None = None

    @property
    def processors(self) -> Sequence[FrameProcessor]:
        return tuple(self._branches)

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
        await asyncio.gather(*(branch.setup(setup) for branch in self._branches))

    async def cleanup(self) -> None:
        await asyncio.gather(*(branch.cleanup() for branch in self._branches))
        await super().cleanup()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        entries = self._tops if direction is DOWNSTREAM else self._bottoms
        if len(entries) > 1:
            self._left[frame] = False
        if isinstance(frame, _LIFECYCLE):
            self._waiting[frame] = len(entries)
            if isinstance(frame, StartFrame):
                self._held = []
        for entry in entries:
            await entry.queue_frame(frame, direction)

    async def _leave(self, frame: Frame, direction: FrameDirection) -> None:
        remaining = self._waiting.get(frame)
        if remaining is not None:
            if remaining > 1:
                self._waiting[frame] = remaining - 1
                return
            del self._waiting[frame]
            await self.push_frame(frame, direction)
            if isinstance(frame, StartFrame):
                held, self._held = self._held or [], None
                for held_frame, held_direction in held:
                    await self._leave(held_frame, held_direction)
            return
        if self._held is not None:
            self._held.append((frame, direction))
            return
        left = self._left.get(frame)
        if left is None:  # produced inside a branch: only one way out
            await self.push_frame(frame, direction)
        elif not left:
            self._left[frame] = True
            await self.push_frame(frame, direction)
