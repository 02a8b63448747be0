from __future__ import annotations

import asyncio
import gc

import pytest

from helpers.rtvi import RTVISession
from voxloop.frames import (
    AggregatedTextFrame,
    AggregatedTextProgressFrame,
    AggregationType,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallFromLLM,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallsStartedFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    LLMTokenUsage,
    LLMUsageMetricsData,
    MetricsFrame,
    OutputAudioRawFrame,
    ProcessingMetricsData,
    STTUsageMetricsData,
    TextFrame,
    TranscriptionFrame,
    TTFBMetricsData,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    TTSUsageMetricsData,
    UserMuteStartedFrame,
    UserMuteStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from voxloop.pipeline import FrameDirection, FrameProcessor
from voxloop.rtvi import (
    FunctionCallReportLevel,
    RTVIConfigureObserverFrame,
    RTVIObserverParams,
    RTVIProcessor,
    RTVIServerMessageFrame,
)

L = {"label": "rtvi-ai"}


def session(params: RTVIObserverParams | None = None) -> RTVISession:
    rtvi = RTVIProcessor(observer_params=params, client_ready_timeout_secs=None)
    # Two plain hops between RTVI and the output: every frame is seen several times.
    return RTVISession(rtvi, FrameProcessor(), FrameProcessor())


async def finish(s: RTVISession) -> None:
    """End the session: the observer is drained before the task finishes."""
    await s.harness.end()


def events(s: RTVISession, skip: tuple[str, ...] = ("bot-ready",)) -> list[dict]:
    return [m for m in s.messages if m["type"] not in skip]


def spoken(text: str, kind: AggregationType | str = AggregationType.SENTENCE) -> AggregatedTextFrame:
    frame = AggregatedTextFrame(text, aggregated_by=kind)
    frame.will_be_spoken = True
    return frame


async def test_frame_to_message_mapping_each_frame_once() -> None:
    s = session(RTVIObserverParams(vad_user_speaking_enabled=True))
    async with s:
        await s.harness.push(
            UserStartedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            InterimTranscriptionFrame("wha", user_id="u1", timestamp="t0"),
            TranscriptionFrame("what time is it", user_id="u1", timestamp="t1"),
            VADUserStoppedSpeakingFrame(),
            UserStoppedSpeakingFrame(),
            UserMuteStartedFrame(),
            UserMuteStoppedFrame(),
            LLMContextFrame(
                context={
                    "messages": [
                        {"role": "system", "content": "be kind"},
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "what"},
                                {"type": "image_url", "image_url": {}},
                                {"type": "text", "text": "time"},
                            ],
                        },
                    ]
                }
            ),
            LLMFullResponseStartFrame(),
            LLMTextFrame("It is"),
            LLMTextFrame(" noon."),
            LLMFullResponseEndFrame(),
            TTSStartedFrame(),
            TTSStoppedFrame(),
            RTVIServerMessageFrame(data={"custom": True}),
        )
        await finish(s)
    assert events(s) == [
        {**L, "type": "user-started-speaking"},
        {**L, "type": "vad-user-started-speaking"},
        {
            **L,
            "type": "user-transcription",
            "data": {"text": "wha", "user_id": "u1", "timestamp": "t0", "final": False},
        },
        {
            **L,
            "type": "user-transcription",
            "data": {"text": "what time is it", "user_id": "u1", "timestamp": "t1", "final": True},
        },
        {**L, "type": "vad-user-stopped-speaking"},
        {**L, "type": "user-stopped-speaking"},
        {**L, "type": "user-mute-started"},
        {**L, "type": "user-mute-stopped"},
        {**L, "type": "user-llm-text", "data": {"text": "what time"}},
        {**L, "type": "bot-llm-started"},
        {**L, "type": "bot-llm-text", "data": {"text": "It is"}},
        {**L, "type": "bot-llm-text", "data": {"text": " noon."}},
        {**L, "type": "bot-llm-stopped"},
        {**L, "type": "bot-tts-started"},
        {**L, "type": "bot-tts-stopped"},
        {**L, "type": "server-message", "data": {"custom": True}},
    ]


async def test_disabled_reports_are_not_sent() -> None:
    params = RTVIObserverParams(
        user_speaking_enabled=False,
        user_transcription_enabled=False,
        bot_llm_enabled=False,
        bot_tts_enabled=False,
        user_llm_enabled=False,
    )
    async with session(params) as s:
        await s.harness.push(
            UserStartedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            TranscriptionFrame("x", user_id="u", timestamp="t"),
            LLMTextFrame("y"),
            TTSStartedFrame(),
            LLMContextFrame(context={"messages": [{"role": "user", "content": "z"}]}),
        )
        await finish(s)
    assert events(s) == []


async def test_bot_output_never_ahead_of_the_audio() -> None:
    async with session() as s:
        await s.ready()
        first, second = spoken("Hello there."), spoken("How are you?")
        await s.harness.push(first, TextFrame("not reported"))
        await s.harness.push(BotStartedSpeakingFrame())
        said = TTSTextFrame("Hello there.", aggregated_by=AggregationType.SENTENCE)
        said.will_be_spoken = True
        await s.harness.push(said, second)
        # The output is queued and speaking frames are system frames: the stop would overtake the text
        # still in its queue, where a real output only stops once that text has gone out.
        await s.harness.down_recorder.wait_for(AggregatedTextFrame, count=2)
        await s.harness.push(BotStoppedSpeakingFrame())
        await finish(s)
    assert events(s) == [
        {**L, "type": "bot-started-speaking"},
        {
            **L,
            "type": "bot-output",
            "data": {
                "text": "Hello there.",
                "aggregated_by": "sentence",
                "segment_id": first.id,
                "will_be_spoken": True,
                "spoken_status": "new",
                "spoken_progress": {"accumulated_text": "", "remaining_text": "Hello there."},
            },
        },
        {**L, "type": "bot-tts-text", "data": {"text": "Hello there."}},
        {
            **L,
            "type": "bot-output",
            "data": {
                "text": "Hello there.",
                "aggregated_by": "sentence",
                "segment_id": said.id,
                "will_be_spoken": True,
                "spoken_status": "completed",
                "spoken_progress": {"accumulated_text": "Hello there.", "remaining_text": ""},
            },
        },
        {
            **L,
            "type": "bot-output",
            "data": {
                "text": "How are you?",
                "aggregated_by": "sentence",
                "segment_id": second.id,
                "will_be_spoken": True,
                "spoken_status": "new",
                "spoken_progress": {"accumulated_text": "", "remaining_text": "How are you?"},
            },
        },
        {**L, "type": "bot-stopped-speaking"},
    ]


async def test_text_whose_audio_was_interrupted_is_not_reported() -> None:
    async with session() as s:
        await s.ready()
        await s.harness.push(spoken("Never heard."), InterruptionFrame())
        await s.harness.push(BotStartedSpeakingFrame(), BotStoppedSpeakingFrame())
        await finish(s)
    assert [m["type"] for m in events(s)] == [
        "bot-interrupted",
        "bot-started-speaking",
        "bot-stopped-speaking",
    ]


async def test_unspoken_text_and_word_progress() -> None:
    async with session() as s:
        await s.ready()
        silent = AggregatedTextFrame("[shown only]", aggregated_by="note")
        word = TTSTextFrame("Hello", aggregated_by=AggregationType.WORD)
        segment = spoken("Hello world")
        progress = AggregatedTextProgressFrame(
            segment_id=segment.id, text="Hello", accumulated_text="Hello", remaining_text=" world"
        )
        done = AggregatedTextProgressFrame(
            segment_id=segment.id, text=" world", accumulated_text="Hello world", remaining_text=""
        )
        await s.harness.push(silent, BotStartedSpeakingFrame(), segment, word, progress, done)
        await finish(s)
    outputs = [m["data"] for m in s.of_type("bot-output")]
    assert outputs[0] == {
        "text": "[shown only]",
        "aggregated_by": "note",
        "segment_id": silent.id,
        "will_be_spoken": False,
    }
    assert outputs[1]["spoken_status"] == "new"
    assert outputs[2:] == [  # no bot-output for the word itself: current clients follow the progress
        {
            "text": "Hello",
            "aggregated_by": "sentence",
            "segment_id": segment.id,
            "will_be_spoken": True,
            "spoken_status": "in-progress",
            "spoken_progress": {"accumulated_text": "Hello", "remaining_text": " world"},
        },
        {
            "text": " world",
            "aggregated_by": "sentence",
            "segment_id": segment.id,
            "will_be_spoken": True,
            "spoken_status": "completed",
            "spoken_progress": {"accumulated_text": "Hello world", "remaining_text": ""},
        },
    ]
    assert [m["data"] for m in s.of_type("bot-tts-text")] == [{"text": "Hello"}]


async def test_bot_output_v1_for_1x_clients() -> None:
    async with session() as s:
        await s.ready("1.2.0")
        word = TTSTextFrame("Hi", aggregated_by=AggregationType.WORD)
        await s.harness.push(BotStartedSpeakingFrame(), spoken("Hi there."), word)
        await finish(s)
    assert [m["data"] for m in s.of_type("bot-output")] == [
        {"text": "Hi there.", "aggregated_by": "sentence", "spoken": False},
        {"text": "Hi", "aggregated_by": "word", "spoken": True},
    ]


async def test_skip_types_and_transforms() -> None:
    async def redact(text: str, kind: str) -> str:
        return text.replace("1234", "****")

    async def shout(text: str, kind: str) -> str:
        return text.upper()

    params = RTVIObserverParams(
        skip_aggregator_types=["secret"], bot_output_transforms=[("*", redact), ("sentence", shout)]
    )
    async with session(params) as s:
        await s.ready()
        await s.harness.push(BotStartedSpeakingFrame(), spoken("pin 1234", "secret"), spoken("card 1234 ok"))
        await finish(s)
    assert [m["data"]["text"] for m in s.of_type("bot-output")] == ["CARD **** OK"]


def calls() -> list:
    return [
        FunctionCallsStartedFrame(
            function_calls=[
                FunctionCallFromLLM("get_time", "c1", {"tz": "UTC"}),
                FunctionCallFromLLM("lookup", "c2", {"q": "x"}),
            ]
        ),
        FunctionCallInProgressFrame("get_time", "c1", {"tz": "UTC"}),
        FunctionCallResultFrame("get_time", "c1", {"tz": "UTC"}, {"time": "12:00"}),
        FunctionCallInProgressFrame("lookup", "c2", {"q": "x"}),
        FunctionCallCancelFrame("lookup", "c2"),
    ]


async def test_function_call_report_levels() -> None:
    levels = {"get_time": FunctionCallReportLevel.FULL, "*": FunctionCallReportLevel.NONE}
    async with session(RTVIObserverParams(function_call_report_level=levels)) as s:
        await s.ready()
        await s.harness.push(*calls())
        await s.harness.push(RTVIConfigureObserverFrame(function_call_report_level={"*": "name"}))
        await s.harness.push(FunctionCallInProgressFrame("lookup", "c3", {"q": "y"}))
        await s.harness.push(RTVIConfigureObserverFrame(function_call_report_level={"*": "disabled"}))
        await s.harness.push(FunctionCallInProgressFrame("lookup", "c4", {}))
        await finish(s)
    assert events(s) == [
        {**L, "type": "llm-function-call-started", "data": {"function_name": "get_time"}},
        {**L, "type": "llm-function-call-started", "data": {}},
        {
            **L,
            "type": "llm-function-call-in-progress",
            "data": {"tool_call_id": "c1", "function_name": "get_time", "arguments": {"tz": "UTC"}},
        },
        {
            **L,
            "type": "llm-function-call-stopped",
            "data": {
                "tool_call_id": "c1",
                "cancelled": False,
                "function_name": "get_time",
                "result": {"time": "12:00"},
            },
        },
        {**L, "type": "llm-function-call-in-progress", "data": {"tool_call_id": "c2"}},
        {**L, "type": "llm-function-call-stopped", "data": {"tool_call_id": "c2", "cancelled": True}},
        {
            **L,
            "type": "llm-function-call-in-progress",
            "data": {"tool_call_id": "c3", "function_name": "lookup"},
        },
    ]


async def test_legacy_clients_get_llm_function_call() -> None:
    async with session() as s:
        await s.ready("0.3.0")
        await s.harness.push(FunctionCallInProgressFrame("get_time", "c1", {"tz": "UTC"}))
        await finish(s)
    assert s.of_type("llm-function-call") == [
        {
            **L,
            "type": "llm-function-call",
            "data": {"function_name": "get_time", "tool_call_id": "c1", "args": {"tz": "UTC"}},
        }
    ]


async def test_metrics_one_message_per_frame() -> None:
    usage = LLMTokenUsage(prompt_tokens=10, completion_tokens=5, total_tokens=15, input_audio_tokens=3)
    frame = MetricsFrame(
        data=[
            TTFBMetricsData("llm", "gpt", value=0.25),
            ProcessingMetricsData("tts", value=0.5),
            LLMUsageMetricsData("llm", "gpt", value=usage),
            TTSUsageMetricsData("tts", value=42),
            STTUsageMetricsData("stt", audio_seconds=1.5),
        ]
    )
    async with session() as s:
        await s.harness.push(frame)
        await finish(s)
    assert events(s) == [
        {
            **L,
            "type": "metrics",
            "data": {
                "ttfb": [{"processor": "llm", "model": "gpt", "value": 0.25}],
                "processing": [{"processor": "tts", "value": 0.5}],
                "tokens": [
                    {
                        "processor": "llm",
                        "model": "gpt",
                        "prompt_tokens": 10,
                        "completion_tokens": 5,
                        "total_tokens": 15,
                        "input_audio_tokens": 3,
                    }
                ],
                "characters": [{"processor": "tts", "value": 42}],
                "stt_usage": [{"processor": "stt", "value": {"audio_seconds": 1.5}}],
            },
        }
    ]


async def test_audio_levels_are_rate_limited() -> None:
    from voxloop.testing import FakeClock

    clock = FakeClock()
    params = RTVIObserverParams(user_audio_level_enabled=True, bot_audio_level_enabled=True)
    rtvi = RTVIProcessor(observer_params=params, client_ready_timeout_secs=None)
    loud = b"\x00\x40" * 160  # 0x4000: half of full scale; 2 loud + 1 silent frame: sqrt(1/6)
    async with RTVISession(rtvi, clock=clock) as s:
        for _ in range(3):
            await s.harness.push(InputAudioRawFrame(loud, 16000, 1))
        await clock.advance(0.2)
        await s.harness.push(InputAudioRawFrame(b"\x00\x00" * 160, 16000, 1))
        await s.harness.push(OutputAudioRawFrame(loud, 24000, 1))
        await clock.advance(0.2)  # the output plays it (and says the bot spoke)
        await finish(s)
    speaking = ("bot-started-speaking", "bot-stopped-speaking")
    levels = [(m["type"], m["data"]["value"]) for m in events(s, skip=("bot-ready", *speaking))]
    assert levels == [("user-audio-level", 0.5), ("user-audio-level", 0.4082), ("bot-audio-level", 0.5)]


class Chatter(FrameProcessor):
    """Adds text of its own after each text it passes on (for the next processor, not the client)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if isinstance(frame, LLMTextFrame) and not frame.text.startswith("chatter"):
            await self.push_frame(LLMTextFrame(f"chatter about {frame.text}"))


class Listener(FrameProcessor):
    """Takes the chatter in; everything else goes on."""

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, LLMTextFrame) and frame.text.startswith("chatter"):
            self.heard.append(frame.text)
            return
        await self.push_frame(frame, direction)


async def test_ignored_sources() -> None:
    noisy = Chatter(name="noisy")
    params = RTVIObserverParams(ignored_sources=[noisy])
    rtvi = RTVIProcessor(observer_params=params, client_ready_timeout_secs=None)
    listener = Listener()
    async with RTVISession(rtvi, noisy, listener) as s:
        await s.harness.push(LLMTextFrame("seen once, from the first hop"))
        await finish(s)
    assert listener.heard == ["chatter about seen once, from the first hop"]
    # What only the ignored processor pushed is not reported; what it passed on was, from before it.
    assert [m["data"]["text"] for m in s.of_type("bot-llm-text")] == ["seen once, from the first hop"]


async def test_observer_memory_is_bounded() -> None:
    async with session() as s:
        await s.harness.push(*[LLMTextFrame("x") for _ in range(500)])
        await s.wait_for_message("bot-llm-text", count=500)
        # The output is queued: once all 500 are out of it, one more report means the observer has
        # also seen every hop after the output (it handles hops in order).
        await s.harness.down_recorder.wait_for(LLMTextFrame, count=500)
        await s.harness.push(LLMTextFrame("sync point"))
        await s.wait_for_message("bot-llm-text", count=501)
        s.harness.down_recorder.frames.clear()
        gc.collect()
        assert len(s.rtvi.observer._seen) < 10


async def test_system_logs_are_forwarded_when_enabled() -> None:
    import logging

    handlers_before = list(logging.getLogger("voxloop").handlers)
    async with session(RTVIObserverParams(system_logs_enabled=True)) as s:
        await s.harness.push(LLMTextFrame("sync point"))  # the observer has started by now
        await s.wait_for_message("bot-llm-text")
        logging.getLogger("voxloop.services.demo").warning("model loaded in %d ms", 42)
        log = await s.wait_for_message("system-log")
        await finish(s)
    assert log["data"]["text"].endswith("model loaded in 42 ms")
    assert logging.getLogger("voxloop").handlers == handlers_before  # the forwarder is gone


async def test_system_logs_from_another_thread_arrive(capsys: pytest.CaptureFixture[str]) -> None:
    """A worker thread (a model's executor) logging hands its record over to the loop safely."""
    import logging

    loop = asyncio.get_running_loop()
    async with session(RTVIObserverParams(system_logs_enabled=True)) as s:
        await s.harness.push(LLMTextFrame("sync point"))  # the observer has started by now
        await s.wait_for_message("bot-llm-text")
        loop.set_debug(True)  # asyncio then refuses loop calls made from the wrong thread
        try:
            await asyncio.to_thread(logging.getLogger("voxloop.services.local").warning, "decoded %d", 7)
            log = await s.wait_for_message("system-log", timeout=5)
        finally:
            loop.set_debug(False)
        await finish(s)
    assert log["data"]["text"].endswith("decoded 7")
    assert "Logging error" not in capsys.readouterr().err  # the handler itself did not fail


async def test_audio_never_reaches_the_observer_unless_levels_are_reported() -> None:
    """The observer declares its frame types, so the task skips audio hops before queuing them."""
    for enabled in (False, True):
        params = RTVIObserverParams(user_audio_level_enabled=enabled, bot_audio_level_enabled=enabled)
        rtvi = RTVIProcessor(observer_params=params, client_ready_timeout_secs=None)
        observer = rtvi.observer
        shown: list[type] = []
        on_push = observer.on_push_frame

        async def spy(data, on_push=on_push, shown=shown):  # type: ignore[no-untyped-def]
            shown.append(type(data.frame))
            await on_push(data)

        observer.on_push_frame = spy  # type: ignore[method-assign]
        async with RTVISession(rtvi, FrameProcessor()) as s:
            await s.harness.push(
                InputAudioRawFrame(b"\x00\x00" * 160, 16000, 1), LLMTextFrame("hi"), TextFrame("x")
            )
            await s.harness.push(OutputAudioRawFrame(b"\x00\x00" * 160, 24000, 1))
            await finish(s)
        assert LLMTextFrame in shown  # what it maps still arrives, on every hop
        assert (InputAudioRawFrame in shown) is enabled
        assert (OutputAudioRawFrame in shown) is enabled
        assert TextFrame not in shown  # not a type it maps
