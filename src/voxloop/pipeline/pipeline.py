"""Pipeline: processors in a line, nestable."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

from ..frames import Frame
from .processor import DOWNSTREAM, FrameDirection, FrameProcessor, FrameProcessorSetup


class Pipeline(FrameProcessor):
    """Links processors in order; a pipeline can be a member of another pipeline.

    A pipeline adds no hop of its own: linking connects its last member straight to whatever
    follows it, so nesting costs nothing per frame.
    """

    def __init__(self, processors: Sequence[FrameProcessor], *, name: str | None = None) -> None:
        super().__init__(name=name)
        members = list(processors) or [FrameProcessor(name=f"{self.name}::empty")]
        for before, after in zip(members, members[1:], strict=False):
            before.link(after)
        self._members = members

    @property
    def processors(self) -> Sequence[FrameProcessor]:
        return tuple(self._members)

    def link(self, other: FrameProcessor) -> None:
        self._members[-1].link(other)

    def entry_processor(self) -> FrameProcessor:
        return self._members[0].entry_processor()

    def exit_processor(self) -> FrameProcessor:
        return self._members[-1].exit_processor()

    async def queue_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        """Frames sent to the pipeline itself go to its first (or, upstream, last) member."""
        if direction is DOWNSTREAM:
            await self.entry_processor().queue_frame(frame, direction)
        else:
            await self.exit_processor().queue_frame(frame, direction)

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
        await asyncio.gather(*(member.setup(setup) for member in self._members))

    async def cleanup(self) -> None:
        await asyncio.gather(*(member.cleanup() for member in self._members))
        await super().cleanup()


def walk(processor: FrameProcessor) -> Iterator[FrameProcessor]:
    """``processor`` and everything inside it, depth first."""
    yield processor
    for child in processor.processors:
        yield from walk(child)
