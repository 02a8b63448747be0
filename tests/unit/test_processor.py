from __future__ import annotations

import asyncio
import logging

import pytest

from helpers.gate import Gate
from voxloop.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMTokenUsage,
    LLMUsageMetricsData,
    MetricsFrame,
    OutputTransportMessageUrgentFrame,
    ProcessingMetricsData,
    StartFrame,
    TextFrame,
    TTFBMetricsData,
    TTSUsageMetricsData,
)
from voxloop.pipeline import (
    DOWNSTREAM,
    UPSTREAM,
    FrameDirection,
    FrameProcessor,
    Pipeline,
    PipelineParams,
)
from voxloop.testing import FakeClock, FrameRecorder, PipelineHarness, run_test


def texts(frames: list[Frame]) -> list[str]:
    return [f.text for f in frames if isinstance(f, TextFrame)]


class Upper(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame):
            frame = TextFrame(frame.text.upper())
        await self.push_frame(frame, direction)


class Exploding(FrameProcessor):
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame) and frame.text == "boom":
            raise ValueError("cannot handle boom")
        await self.push_frame(frame, direction)


async def test_default_processor_passes_everything_on_in_order() -> None:
    sent = [TextFrame(str(i)) for i in range(50)]
    down, up = await run_test(FrameProcessor(), sent, [TextFrame] * 50, [])
    assert [f.text for f in down] == [str(i) for i in range(50)]
    assert down[0] is sent[0]


async def test_processor_transforms_frames() -> None:
    down, _ = await run_test(Upper(), [TextFrame("hi"), TextFrame("there")])
    assert texts(down) == ["HI", "THERE"]


@pytest.mark.parametrize("queued", [False, True])
async def test_exception_becomes_upstream_error_and_pipeline_goes_on(queued, caplog) -> None:
    processor = Exploding(queued=queued)
    errors: list[ErrorFrame] = []
    processor.add_event_handler("on_error", lambda p, e: errors.append(e))
    with caplog.at_level(logging.ERROR, logger="voxloop"):
        down, up = await run_test(
            processor,
            [TextFrame("a"), TextFrame("boom"), TextFrame("b")],
            [TextFrame, TextFrame],
            [ErrorFrame],
        )
    assert texts(down) == ["a", "b"]
    assert "ValueError: cannot handle boom" in up[0].error
    assert up[0].processor is processor and isinstance(up[0].exception, ValueError)
    assert not up[0].fatal
    assert errors == [up[0]]
    assert "cannot handle boom" in caplog.text


async def test_system_frames_overtake_queued_data() -> None:
    gate = Gate(TextFrame)
    async with PipelineHarness(gate) as h:
        await h.push(TextFrame("first"), TextFrame("second"))
        await gate.holding.wait()
        urgent = OutputTransportMessageUrgentFrame(message={"now": True})
        await h.push(urgent)
        await h.down_recorder.wait_for(OutputTransportMessageUrgentFrame)
        assert texts(h.down) == []  # both texts are still held or queued behind the gate
        gate.opened.set()
        await h.down_recorder.wait_for(TextFrame, count=2)
    assert h.down[0] is urgent
    assert texts(h.down) == ["first", "second"]


async def test_interruption_drops_queued_and_cancels_in_flight_but_keeps_uninterruptible() -> None:
    gate = Gate(TextFrame)
    async with PipelineHarness(gate) as h:
        result = FunctionCallResultFrame("get_time", "call-1", {}, "12:00")
        await h.push(TextFrame("in flight"), TextFrame("queued"), result, TextFrame("queued 2"))
        await gate.holding.wait()
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(FunctionCallResultFrame)
        await h.push(TextFrame("after"))
        gate.opened.set()
        await h.down_recorder.wait_for(TextFrame)
    assert [f.text for f in gate.cancelled] == ["in flight"]
    kinds = [type(f) for f in h.down]
    assert kinds == [InterruptionFrame, FunctionCallResultFrame, TextFrame, EndFrame]
    assert texts(h.down) == ["after"]


async def test_uninterruptible_frame_in_flight_is_not_cancelled() -> None:
    gate = Gate(FunctionCallResultFrame)
    async with PipelineHarness(gate) as h:
        await h.push(FunctionCallResultFrame("fn", "1", {}, "ok"), TextFrame("dropped"))
        await gate.holding.wait()
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(InterruptionFrame)
        gate.opened.set()
        await h.down_recorder.wait_for(FunctionCallResultFrame)
    assert gate.cancelled == []
    assert [type(f) for f in h.down] == [InterruptionFrame, FunctionCallResultFrame, EndFrame]


async def test_end_frame_survives_interruption_and_ends_the_pipeline() -> None:
    gate = Gate(TextFrame)
    harness = PipelineHarness(gate)
    async with harness as h:
        await h.push(TextFrame("slow"))
        await gate.holding.wait()
        await h.task.stop_when_done()
        await h.push_up(InterruptionFrame())  # from below, like a transport would
        await h.push(InterruptionFrame())
    assert isinstance(h.down[-1], EndFrame)
    assert harness.task.has_finished()


class ShieldCheck(FrameProcessor):
    """Queued: handling a text pushes an uninterruptible result, then keeps working."""

    def __init__(self) -> None:
        super().__init__(queued=True)
        self.after_push = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame):
            await self.push_frame(FunctionCallResultFrame("fn", "1", {}, frame.text))
            await self.after_push.wait()
        await self.push_frame(frame, direction)


async def test_uninterruptible_frame_pushed_by_interrupted_work_is_still_delivered() -> None:
    producer = ShieldCheck()
    slow_consumer = Gate(FunctionCallResultFrame, queued=False)  # inline, on producer's task
    async with PipelineHarness(Pipeline([producer, slow_consumer])) as h:
        await h.push(TextFrame("work"))
        await slow_consumer.holding.wait()
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(InterruptionFrame)
        slow_consumer.opened.set()
        await h.down_recorder.wait_for(FunctionCallResultFrame)
    assert slow_consumer.cancelled == []
    assert [type(f) for f in h.down] == [InterruptionFrame, FunctionCallResultFrame, EndFrame]


async def test_frames_before_start_wait_for_it() -> None:
    recorder = FrameRecorder(DOWNSTREAM)
    processor = Upper()
    processor.link(recorder)
    await processor.queue_frame(TextFrame("early"))
    assert recorder.frames == []
    await processor.queue_frame(StartFrame())
    assert [type(f) for f in recorder.frames] == [StartFrame, TextFrame]
    assert recorder.frames[1].text == "EARLY"


async def test_linking_twice_is_an_error() -> None:
    a, b, c = FrameProcessor(), FrameProcessor(), FrameProcessor()
    a.link(b)
    with pytest.raises(ValueError, match="already linked"):
        c.link(b)


async def test_event_handlers() -> None:
    class Greeter(FrameProcessor):
        def __init__(self) -> None:
            super().__init__()
            self._register_event_handler("on_greeting")
            self._register_event_handler("on_sync_greeting", sync=True)

    greeter = Greeter()
    got: list[tuple[str, str]] = []
    done = asyncio.Event()

    @greeter.event_handler("on_greeting")
    async def on_greeting(processor: Greeter, who: str) -> None:
        got.append(("async", who))
        done.set()

    @greeter.event_handler("on_sync_greeting")
    def on_sync(processor: Greeter, who: str) -> None:
        got.append(("sync", who))

    @greeter.event_handler("on_sync_greeting")
    def broken(processor: Greeter, who: str) -> None:
        raise RuntimeError("handler bug")

    await greeter._call_event_handler("on_sync_greeting", "ann")
    assert got == [("sync", "ann")]  # ran inline; the broken handler's error was contained
    await greeter._call_event_handler("on_greeting", "bob")
    await done.wait()
    assert got[-1] == ("async", "bob")
    with pytest.raises(ValueError, match="has no event 'on_greetings'"):
        greeter.add_event_handler("on_greetings", on_sync)
    await greeter.cleanup()


async def test_broadcast_frame_links_siblings() -> None:
    class Broadcaster(FrameProcessor):
        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await self.push_frame(frame, direction)
            if isinstance(frame, TextFrame):
                await self.broadcast_frame(TextFrame, text="both ways")

    down, up = await run_test(Broadcaster(), [TextFrame("go")], [TextFrame, TextFrame], [TextFrame])
    twin_down, twin_up = down[1], up[0]
    assert twin_down is not twin_up and twin_down.id != twin_up.id
    assert twin_down.broadcast_sibling_id == twin_up.id
    assert twin_up.broadcast_sibling_id == twin_down.id


async def test_broadcast_interruption_from_own_work_keeps_running() -> None:
    class SelfInterrupter(FrameProcessor):
        def __init__(self) -> None:
            super().__init__(queued=True)
            self.code_after_ran = False

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            if isinstance(frame, TextFrame) and frame.text == "interrupt":
                await self.broadcast_interruption()
                self.code_after_ran = True
                return
            await self.push_frame(frame, direction)

    processor = SelfInterrupter()
    down, up = await run_test(
        processor,
        [TextFrame("a"), TextFrame("interrupt")],
        [TextFrame, InterruptionFrame],
        [InterruptionFrame],
    )
    assert processor.code_after_ran


class Timed(FrameProcessor):
    """Measures TTFB and processing on the (fake) clock, and reports usage."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(queued=True)
        self.fake_clock = clock

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame) and frame.text == "measure":
            await self.start_ttfb_metrics()
            await self.start_processing_metrics()
            await self.fake_clock.advance(0.25)
            await self.stop_ttfb_metrics()
            await self.fake_clock.advance(0.5)
            await self.stop_processing_metrics()
            await self.start_llm_usage_metrics(LLMTokenUsage(10, 5, 15))
            await self.start_tts_usage_metrics("hello")
        elif isinstance(frame, TextFrame) and frame.text == "start only":
            await self.start_ttfb_metrics()
            await self.fake_clock.advance(0.1)
        await self.push_frame(frame, direction)


async def test_metrics_are_measured_on_the_pipeline_clock() -> None:
    clock = FakeClock()
    processor = Timed(clock)
    params = PipelineParams(enable_metrics=True, enable_usage_metrics=True)
    async with PipelineHarness(processor, params=params, clock=clock) as h:
        await h.push(TextFrame("measure"))
        await h.down_recorder.wait_for(TextFrame)
        await h.push(TextFrame("start only"))
        await h.down_recorder.wait_for(TextFrame, count=2)
        await h.push(InterruptionFrame())  # stops the running TTFB timer and reports it
        await h.down_recorder.wait_for(InterruptionFrame)
    metrics = [d for m in h.down_recorder.of_type(MetricsFrame) for d in m.data]
    initial, measured = metrics[:2], metrics[2:]
    assert [type(d) for d in initial] == [TTFBMetricsData, ProcessingMetricsData]
    assert all(d.value == 0 for d in initial)
    ttfb, processing, llm, tts, interrupted = measured
    assert isinstance(ttfb, TTFBMetricsData) and ttfb.value == pytest.approx(0.25)
    assert isinstance(processing, ProcessingMetricsData) and processing.value == pytest.approx(0.75)
    assert isinstance(llm, LLMUsageMetricsData) and llm.value == LLMTokenUsage(10, 5, 15)
    assert isinstance(tts, TTSUsageMetricsData) and tts.value == 5
    assert isinstance(interrupted, TTFBMetricsData) and interrupted.value == pytest.approx(0.1)
    assert ttfb.processor == processor.name


async def test_metrics_are_off_unless_enabled() -> None:
    clock = FakeClock()
    async with PipelineHarness(Timed(clock), clock=clock) as h:
        await h.push(TextFrame("measure"))
        await h.down_recorder.wait_for(TextFrame)
    assert h.down_recorder.of_type(MetricsFrame) == []


async def test_upstream_frames_flow_up() -> None:
    async with PipelineHarness(Pipeline([Upper(), Upper()])) as h:
        await h.push_up(TextFrame("up"))
        await h.up_recorder.wait_for(TextFrame)
    assert texts(h.up) == ["UP"]
    assert h.up[0] is not None and UPSTREAM == FrameDirection.UPSTREAM


async def test_cancel_before_start_passes_through() -> None:
    recorder = FrameRecorder(DOWNSTREAM)
    processor = Upper()
    processor.link(recorder)
    await processor.queue_frame(TextFrame("early"))
    await processor.queue_frame(CancelFrame(reason="never started"))
    await processor.queue_frame(TextFrame("late"))
    assert [type(f) for f in recorder.frames] == [CancelFrame]  # no waiting for a start that never comes
