from __future__ import annotations

import asyncio
import gc
import tracemalloc

from voxloop.frames import (
    BotSpeakingFrame,
    EndFrame,
    Frame,
    LLMTextFrame,
    OutputAudioRawFrame,
    StartFrame,
    TextFrame,
    TTSAudioRawFrame,
)
from voxloop.pipeline import (
    DOWNSTREAM,
    UPSTREAM,
    BaseObserver,
    FrameProcessor,
    FramePushed,
    ObserverHub,
    Pipeline,
    SeenFrames,
)
from voxloop.testing import FakeClock, PipelineHarness


class Recorder(BaseObserver):
    def __init__(self) -> None:
        self.pushes: list[FramePushed] = []
        self.started = 0
        self.finished = 0

    async def on_push_frame(self, data: FramePushed) -> None:
        self.pushes.append(data)

    async def on_pipeline_started(self) -> None:
        self.started += 1

    async def on_pipeline_finished(self) -> None:
        self.finished += 1


class Blocked(BaseObserver):
    """An observer stuck until released: the pipeline must not wait for it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.seen = 0

    async def on_push_frame(self, data: FramePushed) -> None:
        await self.release.wait()
        self.seen += 1


async def test_observer_sees_every_hop_with_source_destination_and_time() -> None:
    a, b = FrameProcessor(name="a"), FrameProcessor(name="b")
    observer = Recorder()
    async with PipelineHarness(Pipeline([a, b]), observers=[observer]) as h:
        text = TextFrame("hello")
        await h.push(text)
        await h.down_recorder.wait_for(TextFrame)
        await h.push_up(TextFrame("up"))
        await h.up_recorder.wait_for(TextFrame)
    hops = [(p.source.name, p.destination.name, p.direction) for p in observer.pushes if p.frame is text]
    assert hops == [
        (hops[0][0], "harness::up", DOWNSTREAM),
        ("harness::up", "a", DOWNSTREAM),
        ("a", "b", DOWNSTREAM),
        ("b", "harness::down", DOWNSTREAM),
        ("harness::down", hops[-1][1], DOWNSTREAM),
    ]
    up_hops = [(p.source.name, p.destination.name) for p in observer.pushes if p.direction is UPSTREAM]
    assert ("b", "a") in up_hops and ("a", "harness::up") in up_hops
    times = [p.timestamp for p in observer.pushes]
    assert times == sorted(times)
    assert observer.started == 1 and observer.finished == 1
    assert isinstance(observer.pushes[0].frame, StartFrame)
    assert isinstance(observer.pushes[-1].frame, EndFrame)


async def test_a_stuck_observer_never_blocks_the_pipeline() -> None:
    observer = Blocked()
    harness = PipelineHarness(FrameProcessor(), observers=[observer])
    async with harness as h:
        await h.push(*[TextFrame(str(i)) for i in range(100)])
        await h.down_recorder.wait_for(TextFrame, count=100)
        assert observer.seen == 0
        observer.release.set()
    assert observer.seen > 400  # it caught up on every hop once released


async def test_observer_added_at_run_time() -> None:
    late = Recorder()
    async with PipelineHarness(FrameProcessor()) as h:
        h.task.add_observer(late)
        await h.push(TextFrame("after"))
        await h.down_recorder.wait_for(TextFrame)
    assert any(isinstance(p.frame, TextFrame) for p in late.pushes)


async def test_seen_frames_forgets_frames_that_are_gone() -> None:
    seen = SeenFrames()
    kept = TextFrame("kept")
    assert seen.first_sight(kept) and not seen.first_sight(kept)
    for _ in range(1000):
        assert seen.first_sight(TextFrame("transient"))
    gc.collect()
    assert len(seen) == 1


class OncePerFrame(BaseObserver):
    def __init__(self) -> None:
        self._seen = SeenFrames()
        self.frames = 0
        self.hops = 0
        self.caught_up = asyncio.Event()
        self.target = 0

    async def on_push_frame(self, data: FramePushed) -> None:
        self.hops += 1
        if self._seen.first_sight(data.frame):
            self.frames += 1
        if self.frames >= self.target:
            self.caught_up.set()


async def test_memory_stays_flat_with_an_observer_over_many_frames() -> None:
    """The 1,000,000-frame version is bench/voxloop_pipeline.py --memory."""
    observer = OncePerFrame()
    chain = Pipeline([FrameProcessor() for _ in range(10)])
    async with PipelineHarness(chain, observers=[observer]) as h:
        h.down_recorder.direction = UPSTREAM  # record nothing: recording would grow by design

        async def send(count: int) -> None:
            observer.caught_up.clear()
            observer.target = observer.frames + count
            await h.push(*[TextFrame("x") for _ in range(count)])
            await observer.caught_up.wait()

        await send(5000)  # warm up caches and allocator pools
        tracemalloc.start()
        await send(5000)
        gc.collect()
        early = tracemalloc.get_traced_memory()[0]
        for _ in range(8):
            await send(5000)
        gc.collect()
        late = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    assert observer.frames >= 50_000
    assert late - early < 64 * 1024, f"grew by {late - early} bytes over 40,000 frames"


class TextOnly(Recorder):
    frame_types = (TextFrame,)


async def test_an_observer_is_shown_only_the_frame_types_it_declares() -> None:
    text_only, everything = TextOnly(), Recorder()
    async with PipelineHarness(
        Pipeline([FrameProcessor(), FrameProcessor()]), observers=[text_only, everything]
    ) as h:
        await h.push(
            TextFrame("a"),
            LLMTextFrame("b"),
            OutputAudioRawFrame(audio=b"\0\0", sample_rate=16000, num_channels=1),
        )
        await h.down_recorder.wait_for(OutputAudioRawFrame)
    kinds = {type(p.frame) for p in text_only.pushes}
    assert kinds == {TextFrame, LLMTextFrame}  # subclasses included, nothing else
    assert {StartFrame, OutputAudioRawFrame, EndFrame} <= {type(p.frame) for p in everything.pushes}
    text_hops = [p for p in everything.pushes if isinstance(p.frame, TextFrame)]
    assert [(p.frame, p.source, p.destination) for p in text_only.pushes] == [
        (p.frame, p.source, p.destination) for p in text_hops
    ]  # the same hops, in the same order
    assert text_only.started == 1 and text_only.finished == 1  # lifecycle hooks still come


class Kinds(BaseObserver):
    def __init__(self, *types: type[Frame]) -> None:
        self.frame_types = types
        self.seen: list[type[Frame]] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        self.seen.append(type(data.frame))


async def test_hub_routes_per_frame_class_and_reroutes_when_observers_change() -> None:
    clock = FakeClock()
    hub = ObserverHub(clock, activity_types=(BotSpeakingFrame,))
    a, b = FrameProcessor(name="a"), FrameProcessor(name="b")
    audio_only = Kinds(OutputAudioRawFrame)
    hub.add(audio_only)
    hub.start()
    quiet_since = hub.last_activity_ns
    await clock.advance(1)
    hub.on_push(a, b, TextFrame("x"), DOWNSTREAM)  # neither activity nor wanted by anyone
    assert hub.last_activity_ns == quiet_since
    hub.on_push(a, b, BotSpeakingFrame(), DOWNSTREAM)  # activity, though no observer wants it
    assert hub.last_activity_ns == clock.now_ns()
    hub.on_push(a, b, TTSAudioRawFrame(audio=b"\0\0", sample_rate=24000, num_channels=1), DOWNSTREAM)
    late = Kinds(TextFrame)
    hub.add(late)  # the cached routes must not hide TextFrame from the new observer
    hub.on_push(a, b, TextFrame("y"), DOWNSTREAM)
    await hub.remove(audio_only)
    hub.on_push(a, b, OutputAudioRawFrame(audio=b"\0\0", sample_rate=24000, num_channels=1), DOWNSTREAM)
    await hub.finish()
    assert audio_only.seen == [TTSAudioRawFrame]
    assert late.seen == [TextFrame]


async def test_an_observer_that_wants_nothing_still_hears_start_and_finish() -> None:
    nothing = Recorder()
    nothing.frame_types = ()
    async with PipelineHarness(FrameProcessor(), observers=[nothing]) as h:
        await h.push(TextFrame("a"))
        await h.down_recorder.wait_for(TextFrame)
    assert nothing.pushes == []
    assert nothing.started == 1 and nothing.finished == 1
