from __future__ import annotations

import gc

from helpers.gate import Gate
from voxloop.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    StartFrame,
    TextFrame,
    TranscriptionFrame,
)
from voxloop.pipeline import FrameDirection, FrameProcessor, ParallelPipeline, Pipeline, walk
from voxloop.testing import PipelineHarness, run_test


class Tag(FrameProcessor):
    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame) and type(frame) is TextFrame:
            frame = TextFrame(frame.text + self.tag)
        await self.push_frame(frame, direction)


class Announcer(FrameProcessor):
    """Pushes a frame of its own as soon as it starts, and one per transcription."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(TextFrame("hello from a branch"))
        if isinstance(frame, TranscriptionFrame):
            await self.push_frame(TextFrame(f"heard {frame.text}"))


async def test_nested_pipelines_run_in_order() -> None:
    inner = Pipeline([Tag("b"), Pipeline([Tag("c")]), Tag("d")])
    outer = Pipeline([Tag("a"), inner, Tag("e"), Pipeline([])])
    down, _ = await run_test(outer, [TextFrame("1"), TextFrame("2")])
    assert [f.text for f in down if isinstance(f, TextFrame)] == ["1abcde", "2abcde"]
    assert len(list(walk(outer))) == 10  # 4 pipelines (one empty, with its stand-in), 6 members


async def test_pipeline_adds_no_hop() -> None:
    a, b = Tag("a"), Tag("b")
    Pipeline([a, Pipeline([b])])
    assert a.next is b and b.previous is a


async def test_upstream_frames_cross_nested_pipelines() -> None:
    async with PipelineHarness(Pipeline([Tag("x"), Pipeline([Tag("y"), Tag("z")])])) as h:
        await h.push_up(TextFrame("u"))
        await h.up_recorder.wait_for(TextFrame)
    assert [f.text for f in h.up if isinstance(f, TextFrame)] == ["uzyx"]


async def test_parallel_frames_leave_once() -> None:
    parallel = ParallelPipeline([FrameProcessor()], [FrameProcessor()], [FrameProcessor()])
    sent = [TextFrame(str(i)) for i in range(20)]
    down, _ = await run_test(parallel, sent)
    assert [f.text for f in down] == [str(i) for i in range(20)]
    assert sum(isinstance(f, EndFrame) for f in down) == 0  # run_test removed the only EndFrame


async def test_parallel_branches_each_transform() -> None:
    down, _ = await run_test(ParallelPipeline([Tag("-left")], [Tag("-right")]), [TextFrame("t")])
    assert sorted(f.text for f in down) == ["t-left", "t-right"]


async def test_parallel_start_leaves_first_and_end_last() -> None:
    slow = Gate(TextFrame)  # queued: holds texts until opened
    parallel = ParallelPipeline([Announcer()], [slow], [Announcer()])
    async with PipelineHarness(parallel) as h:
        await h.push(TranscriptionFrame("hi", user_id="u", timestamp=""), TextFrame("slow one"))
        await slow.holding.wait()
        await h.task.stop_when_done()
        await h.down_recorder.wait_for(TextFrame, count=4)
        assert not h.down_recorder.of_type(EndFrame)  # the slow branch still holds its text
        slow.opened.set()
    frames = h.down_recorder.frames
    assert isinstance(frames[0], StartFrame)
    assert [f.text for f in frames[1:3]] == ["hello from a branch"] * 2
    assert len(h.down_recorder.of_type(StartFrame)) == 1
    assert len(h.down_recorder.of_type(TranscriptionFrame)) == 1
    assert isinstance(frames[-1], EndFrame) and len(h.down_recorder.of_type(EndFrame)) == 1
    assert "slow one" in [f.text for f in h.down_recorder.of_type(TextFrame)]


async def test_parallel_upstream_leaves_once() -> None:
    async with PipelineHarness(ParallelPipeline([FrameProcessor()], [FrameProcessor()])) as h:
        await h.push_up(TextFrame("up"))
        await h.up_recorder.wait_for(TextFrame)
        await h.push_up(TextFrame("up again"))
        await h.up_recorder.wait_for(TextFrame, count=2)
    assert [f.text for f in h.up if isinstance(f, TextFrame)] == ["up", "up again"]


async def test_parallel_cancel_is_synchronised() -> None:
    parallel = ParallelPipeline([FrameProcessor()], [FrameProcessor()])
    async with PipelineHarness(parallel) as h:
        await h.task.cancel("test")
        await h.task.wait_until_finished()
    assert len(h.down_recorder.of_type(CancelFrame)) == 1


async def test_parallel_memory_does_not_grow_with_frames() -> None:
    parallel = ParallelPipeline([FrameProcessor()], [FrameProcessor()])
    async with PipelineHarness(parallel) as h:
        await h.push(*[TextFrame("x") for _ in range(2000)])
        await h.down_recorder.wait_for(TextFrame, count=2000)
        h.down_recorder.frames.clear()
        gc.collect()
        # 2000 frames went through; only frames still referenced elsewhere (the last one pushed)
        # may remain.
        assert len(parallel._left) <= 2 and len(parallel._waiting) == 0
