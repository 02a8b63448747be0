from __future__ import annotations

import asyncio
import logging

import pytest

from helpers.gate import Gate
from voxloop.frames import (
    BotSpeakingFrame,
    CancelFrame,
    CancelTaskFrame,
    EndFrame,
    EndTaskFrame,
    ErrorFrame,
    FatalErrorFrame,
    Frame,
    HeartbeatFrame,
    InterruptionFrame,
    InterruptionTaskFrame,
    StartFrame,
    StopFrame,
    TextFrame,
)
from voxloop.pipeline import (
    DOWNSTREAM,
    FrameDirection,
    FrameProcessor,
    Pipeline,
    PipelineParams,
    PipelineTask,
)
from voxloop.testing import FakeClock, FrameRecorder, PipelineHarness


async def run_in_background(task: PipelineTask) -> asyncio.Task[None]:
    runner = asyncio.create_task(task.run())
    await task.wait_until_started()
    return runner


async def test_start_metadata_and_params_reach_the_start_frame() -> None:
    recorder = FrameRecorder(DOWNSTREAM)
    params = PipelineParams(audio_in_sample_rate=8000, start_metadata={"call": "abc"})
    task = PipelineTask(recorder, params=params, idle_timeout_secs=None)
    runner = await run_in_background(task)
    await task.stop_when_done()
    await runner
    start = recorder.frames[0]
    assert isinstance(start, StartFrame)
    assert start.metadata == {"call": "abc"} and start.audio_in_sample_rate == 8000


async def test_end_drains_everything_queued_in_order(no_leaked_tasks) -> None:
    gate = Gate(TextFrame)
    async with PipelineHarness(gate) as h:
        await h.push(*[TextFrame(str(i)) for i in range(5)])
        await gate.holding.wait()
        await h.task.stop_when_done()
        await h.push(TextFrame("too late"))  # after the end: dropped
        gate.opened.set()
    assert [f.text for f in h.down if isinstance(f, TextFrame)] == ["0", "1", "2", "3", "4"]
    assert isinstance(h.down[-1], EndFrame)


async def test_cancel_is_immediate_even_while_end_waits(no_leaked_tasks) -> None:
    gate = Gate(TextFrame)  # never opened: the EndFrame would wait for ever
    finished: list[Frame] = []
    async with PipelineHarness(gate) as h:
        h.task.add_event_handler("on_pipeline_finished", lambda t, f: finished.append(f))
        await h.push(TextFrame("stuck"), TextFrame("queued"))
        await gate.holding.wait()
        await h.task.stop_when_done()
        await h.task.cancel("user hung up")
        await h.task.wait_until_finished()
    assert [f.text for f in gate.cancelled] == ["stuck"]
    assert isinstance(finished[0], CancelFrame) and finished[0].reason == "user hung up"
    assert not h.down_recorder.of_type(TextFrame)


class SwallowsCancel(FrameProcessor):
    """A broken processor that hangs on CancelFrame."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, CancelFrame):
            await asyncio.Event().wait()
        await self.push_frame(frame, direction)


async def test_cancel_is_bounded_when_a_processor_hangs(no_leaked_tasks) -> None:
    timeouts: list[Frame] = []
    task = PipelineTask(SwallowsCancel(), idle_timeout_secs=None, cancel_timeout_secs=0.05)
    task.add_event_handler("on_pipeline_timeout", lambda t, f: timeouts.append(f))
    runner = await run_in_background(task)
    await task.cancel()
    await runner
    assert len(timeouts) == 1 and isinstance(timeouts[0], CancelFrame)
    assert task.has_finished()


async def test_no_leaked_tasks_after_end(no_leaked_tasks) -> None:
    class Chatty(FrameProcessor):
        def __init__(self) -> None:
            super().__init__(queued=True)
            self._register_event_handler("on_text")

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            if isinstance(frame, TextFrame):
                await self._call_event_handler("on_text", frame)
            await self.push_frame(frame, direction)

    chatty = Chatty()
    seen: list[str] = []
    chatty.add_event_handler("on_text", lambda p, f: seen.append(f.text))
    params = PipelineParams(enable_heartbeats=True)
    async with PipelineHarness(Pipeline([chatty, FrameProcessor(queued=True)]), params=params) as h:
        await h.push(TextFrame("a"))
    assert seen == ["a"]


async def test_upstream_requests_end_the_task() -> None:
    class AsksToEnd(FrameProcessor):
        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await self.push_frame(frame, direction)
            if isinstance(frame, TextFrame) and frame.text == "bye":
                await self.push_frame(EndTaskFrame(reason="done talking"), FrameDirection.UPSTREAM)

    recorder = FrameRecorder(DOWNSTREAM)
    task = PipelineTask(Pipeline([AsksToEnd(), recorder]), idle_timeout_secs=None)
    runner = await run_in_background(task)
    await task.queue_frames([TextFrame("hi"), TextFrame("bye")])
    await runner
    end = recorder.frames[-1]
    assert isinstance(end, EndFrame) and end.reason == "done talking"


@pytest.mark.parametrize("request_frame", [CancelTaskFrame(reason="stop"), FatalErrorFrame("dead")])
async def test_cancel_requests_and_fatal_errors_cancel_the_task(request_frame: Frame) -> None:
    recorder = FrameRecorder(DOWNSTREAM)
    task = PipelineTask(recorder, idle_timeout_secs=None)
    errors: list[ErrorFrame] = []
    task.add_event_handler("on_pipeline_error", lambda t, e: errors.append(e))
    runner = await run_in_background(task)
    await task.queue_frame(request_frame, FrameDirection.UPSTREAM)
    await runner
    assert isinstance(recorder.frames[-1], CancelFrame)
    assert errors == ([request_frame] if isinstance(request_frame, ErrorFrame) else [])


async def test_non_fatal_error_is_reported_and_the_task_goes_on() -> None:
    errors: list[ErrorFrame] = []
    async with PipelineHarness(FrameProcessor()) as h:
        h.task.add_event_handler("on_pipeline_error", lambda t, e: errors.append(e))
        await h.push_up(ErrorFrame("transient"))
        await h.push(TextFrame("still here"))
        await h.down_recorder.wait_for(TextFrame)
    assert [e.error for e in errors] == ["transient"]


async def test_interruption_request_reaches_the_whole_pipeline() -> None:
    async with PipelineHarness(FrameProcessor()) as h:
        await h.push_up(InterruptionTaskFrame())
        await h.down_recorder.wait_for(InterruptionFrame)


async def test_task_events_and_reached_filters() -> None:
    events: list[str] = []
    recorder = FrameRecorder(DOWNSTREAM)
    task = PipelineTask(recorder, idle_timeout_secs=None)
    task.set_reached_downstream_filter((TextFrame,))
    task.set_reached_upstream_filter((ErrorFrame,))
    task.add_event_handler("on_pipeline_started", lambda t, f: events.append(type(f).__name__))
    task.add_event_handler("on_frame_reached_downstream", lambda t, f: events.append(f.text))
    task.add_event_handler("on_frame_reached_upstream", lambda t, f: events.append(f.error))
    task.add_event_handler("on_pipeline_finished", lambda t, f: events.append(type(f).__name__))
    runner = await run_in_background(task)
    await task.queue_frame(TextFrame("down"))
    await task.queue_frame(ErrorFrame("up"), FrameDirection.UPSTREAM)
    await task.stop_when_done()
    await runner
    assert sorted(events) == sorted(["StartFrame", "down", "up", "EndFrame"])


async def test_stop_frame_finishes_without_cleanup() -> None:
    gate = Gate(TextFrame)
    task = PipelineTask(gate, idle_timeout_secs=None)
    runner = await run_in_background(task)
    await task.queue_frame(StopFrame())
    await runner
    assert gate._process_task is not None and not gate._process_task.done()
    await gate.cleanup()  # the owner of a stopped pipeline cleans it up when it is done with it


async def test_idle_timeout_cancels_after_inactivity() -> None:
    clock = FakeClock()
    idle: list[bool] = []
    task = PipelineTask(FrameProcessor(), clock=clock, idle_timeout_secs=10)
    task.add_event_handler("on_idle_timeout", lambda t: idle.append(True))
    runner = await run_in_background(task)
    await clock.advance(6)
    await task.queue_frame(BotSpeakingFrame())  # activity resets the timer
    await clock.advance(6)
    assert not runner.done() and idle == []
    await clock.advance(5)
    await runner
    assert idle == [True]


async def test_idle_timeout_can_just_report() -> None:
    clock = FakeClock()
    idle: list[bool] = []
    task = PipelineTask(FrameProcessor(), clock=clock, idle_timeout_secs=1, cancel_on_idle_timeout=False)
    task.add_event_handler("on_idle_timeout", lambda t: idle.append(True))
    runner = await run_in_background(task)
    await clock.advance(2.5)
    assert idle == [True, True] and not runner.done()
    await task.stop_when_done()
    await runner


async def test_heartbeats_flow_and_a_stall_is_reported(caplog) -> None:
    clock = FakeClock()
    gate = Gate(HeartbeatFrame)
    recorder = FrameRecorder(DOWNSTREAM)
    params = PipelineParams(enable_heartbeats=True, heartbeats_period_secs=1, heartbeats_monitor_secs=3)
    task = PipelineTask(Pipeline([gate, recorder]), params=params, clock=clock, idle_timeout_secs=None)
    timeouts: list[bool] = []
    task.add_event_handler("on_heartbeat_timeout", lambda t: timeouts.append(True))
    gate.opened.set()
    runner = await run_in_background(task)
    await clock.advance(3)
    assert len(recorder.of_type(HeartbeatFrame)) == 3 and timeouts == []
    gate.opened.clear()  # the gate now stalls: heartbeats stop arriving
    with caplog.at_level(logging.WARNING, logger="voxloop"):
        await clock.advance(6)
    assert len(timeouts) >= 2  # reported again each period while stalled
    assert "not received for more than 3 seconds" in caplog.text
    await task.cancel()
    await runner


async def test_a_task_runs_once() -> None:
    task = PipelineTask(FrameProcessor(), idle_timeout_secs=None)
    runner = await run_in_background(task)
    await task.cancel()
    await runner
    with pytest.raises(RuntimeError, match="already run"):
        await task.run()
