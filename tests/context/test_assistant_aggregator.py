"""The assistant aggregator: what was played goes into the context, function calls are paired."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter

from helpers.sync import through
from voxloop.context import LLMAssistantAggregator, LLMContext
from voxloop.frames import (
    AggregatedTextFrame,
    AggregatedTextProgressFrame,
    AggregationType,
    AssistantTurnStoppedFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallFromLLM,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallResultProperties,
    FunctionCallsStartedFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
)
from voxloop.pipeline import DOWNSTREAM, Pipeline
from voxloop.testing import FakeClock, MemoryTransport, PipelineHarness
from voxloop.transports.params import TransportParams

MESSAGES = TypeAdapter(list[ChatCompletionMessageParam])


def assert_valid_openai(messages: list[dict[str, Any]]) -> None:
    """Valid for OpenAI chat: the SDK's own types, and every tool call answered right after it."""
    MESSAGES.validate_python(messages)
    for i, message in enumerate(messages):
        for call in message.get("tool_calls") or ():
            answers = [m for m in messages[i + 1 :] if m.get("tool_call_id") == call["id"]]
            assert len(answers) == 1 and answers[0]["role"] == "tool", call
            json.loads(call["function"]["arguments"])
        if message["role"] == "tool":
            assert any(
                c["id"] == message["tool_call_id"] for m in messages[:i] for c in m.get("tool_calls") or ()
            )


def spoken(text: str, by: AggregationType = AggregationType.SENTENCE) -> TTSTextFrame:
    return TTSTextFrame(text, aggregated_by=by)


class Session:
    def __init__(self) -> None:
        self.context = LLMContext([{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}])
        self.agg = LLMAssistantAggregator(self.context)
        self.harness = PipelineHarness(self.agg)
        self.stopped: list[tuple[str, bool]] = []
        self.agg.add_event_handler("on_assistant_turn_stopped", lambda _a, t, i: self.stopped.append((t, i)))

    async def __aenter__(self) -> Session:
        await self.harness.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.harness.__aexit__(*exc)

    async def send(self, *frames: Frame) -> None:
        await through(self.harness, *frames)

    def up(self, frame_type: type[Frame]) -> list[Frame]:
        return [f for f in self.harness.up if isinstance(f, frame_type)]

    @property
    def new_messages(self) -> list[dict[str, Any]]:
        return self.context.messages[2:]


async def test_spoken_sentences_are_joined_with_spaces(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(
            LLMFullResponseStartFrame(),
            AggregatedTextFrame("Hello there."),  # no will_be_spoken: text that is not spoken
            spoken("How are you?"),
            LLMFullResponseEndFrame(),
        )
        assert s.new_messages == [{"role": "assistant", "content": "Hello there. How are you?"}]
        stopped = s.up(AssistantTurnStoppedFrame)
        assert len(stopped) == 1 and stopped[0].text == "Hello there. How are you?"
    assert s.stopped == [("Hello there. How are you?", False)]
    # It only listens: everything passes on.
    assert len([f for f in s.harness.down if isinstance(f, TTSTextFrame | LLMFullResponseEndFrame)]) == 2


async def test_announcements_are_ignored_and_unspoken_llm_text_is_joined_as_is(no_leaked_tasks: None) -> None:
    announced = AggregatedTextFrame("Ignored sentence.")
    announced.will_be_spoken = True
    async with Session() as s:
        await s.send(
            LLMFullResponseStartFrame(),
            announced,
            AggregatedTextProgressFrame(segment_id=1, text="x", accumulated_text="x", remaining_text=""),
            LLMTextFrame("Hel"),
            LLMTextFrame("lo, "),
            LLMTextFrame("world"),
            LLMFullResponseEndFrame(),
        )
        assert s.new_messages == [{"role": "assistant", "content": "Hello, world"}]


async def test_interruption_stores_what_was_said_so_far(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(
            LLMFullResponseStartFrame(), spoken("Hello", AggregationType.WORD), spoken("there,", "word")
        )
        await s.send(InterruptionFrame())
        await s.send(LLMFullResponseStartFrame(), spoken("Sure."), LLMFullResponseEndFrame())
        assert s.new_messages == [
            {"role": "assistant", "content": "Hello there,"},
            {"role": "assistant", "content": "Sure."},
        ]
        assert [(f.text, f.interrupted) for f in s.up(AssistantTurnStoppedFrame)] == [
            ("Hello there,", True),
            ("Sure.", False),
        ]


def audio(ms: int) -> TTSAudioRawFrame:
    return TTSAudioRawFrame(audio=b"\x10\x20" * (24 * ms), sample_rate=24000, num_channels=1)


async def test_interruption_behind_a_real_output_keeps_exactly_the_played_words(
    no_leaked_tasks: None,
) -> None:
    """Word-level TTS through the output transport: the words whose audio was sent are stored."""
    clock = FakeClock()
    context = LLMContext([{"role": "user", "content": "count"}])
    output = MemoryTransport(TransportParams(audio_out_chunk_ms=20, audio_out_lead_ms=0)).output()
    assistant = LLMAssistantAggregator(context)
    async with PipelineHarness(Pipeline([output, assistant]), clock=clock) as h:
        frames: list[Frame] = [LLMFullResponseStartFrame(), TTSStartedFrame()]
        for word in ["one", "two", "three", "four"]:
            frames += [spoken(word, AggregationType.WORD), audio(200)]
        await h.push(*frames, TTSStoppedFrame(), LLMFullResponseEndFrame())
        await clock.advance(0.3)  # "one" played, "two" is playing
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(InterruptionFrame)
        await clock.advance(2.0)
    assert context.messages[-1] == {"role": "assistant", "content": "one two"}
    played = [f.text for f in h.down_recorder.frames if isinstance(f, TTSTextFrame)]
    assert played == ["one", "two"]


async def test_tts_speak_text_is_stored(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(TTSStartedFrame(), spoken("Welcome back!"), TTSStoppedFrame())
        assert s.new_messages == [{"role": "assistant", "content": "Welcome back!"}]
        # A TTS that announces the reply before the LLM's start frame reaches us: one message.
        await s.send(TTSStartedFrame(), LLMFullResponseStartFrame(), spoken("Hi."), TTSStoppedFrame())
        await s.send(spoken("Bye."), LLMFullResponseEndFrame())
        assert s.new_messages[1:] == [{"role": "assistant", "content": "Hi. Bye."}]


def calls(*ids: str) -> FunctionCallsStartedFrame:
    return FunctionCallsStartedFrame(
        function_calls=[FunctionCallFromLLM("get_weather", i, {"city": i}) for i in ids]
    )


def in_progress(call_id: str) -> FunctionCallInProgressFrame:
    return FunctionCallInProgressFrame("get_weather", call_id, {"city": call_id}, cancel_on_interruption=True)


def result(call_id: str, value: Any, **kwargs: Any) -> FunctionCallResultFrame:
    return FunctionCallResultFrame("get_weather", call_id, {"city": call_id}, value, **kwargs)


async def test_parallel_calls_run_the_llm_once_when_the_last_settles(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(
            LLMFullResponseStartFrame(),
            calls("a", "b"),
            spoken("Let me check."),
            in_progress("a"),
            in_progress("b"),
            LLMFullResponseEndFrame(),
        )
        assert s.new_messages == [
            {"role": "assistant", "content": "Let me check."},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "a"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "IN_PROGRESS"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "b"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "b", "content": "IN_PROGRESS"},
        ]
        assert_valid_openai(s.context.messages)
        assert not s.up(AssistantTurnStoppedFrame)  # still thinking: calls pending
        await s.send(result("a", {"temp": 21}))
        assert not s.up(LLMContextFrame)
        assert s.new_messages[2]["content"] == '{"temp": 21}'
        await s.send(result("b", "sunny"))
        assert len(s.up(LLMContextFrame)) == 1 and s.up(LLMContextFrame)[0].context is s.context
        assert s.new_messages[4]["content"] == '"sunny"'
        assert_valid_openai(s.context.messages)


async def test_result_with_run_llm_false_does_not_run(no_leaked_tasks: None) -> None:
    async with Session() as s:
        hook_calls: list[int] = []
        hook_ran = asyncio.Event()

        async def hook() -> None:
            hook_calls.append(len(s.context.messages))
            hook_ran.set()

        props = FunctionCallResultProperties(run_llm=False, on_context_updated=hook)
        await s.send(LLMFullResponseStartFrame(), calls("a"), in_progress("a"), LLMFullResponseEndFrame())
        await s.send(result("a", {"ok": True}, properties=props))
        await hook_ran.wait()  # the hook runs in a task of its own
        assert not s.up(LLMContextFrame)
        assert len(s.up(AssistantTurnStoppedFrame)) == 1  # the reply is over after all
        assert hook_calls == [4]


async def test_cancelled_calls_are_marked_and_do_not_run(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(LLMFullResponseStartFrame(), calls("a", "b"), in_progress("a"))
        # b's cancel (a system frame) overtakes its in-progress frame.
        await s.send(FunctionCallCancelFrame("get_weather", "b"), FunctionCallCancelFrame("get_weather", "a"))
        await s.send(in_progress("b"), LLMFullResponseEndFrame())
        tools = [m for m in s.new_messages if m["role"] == "tool"]
        assert [(m["tool_call_id"], m["content"]) for m in tools] == [("a", "CANCELLED"), ("b", "CANCELLED")]
        assert not s.up(LLMContextFrame)
        assert_valid_openai(s.context.messages)


async def test_a_timed_out_call_among_others_runs_the_llm_once_with_every_result(
    no_leaked_tasks: None,
) -> None:
    # The service settles a timed-out call with a result saying so, in order with the other results.
    async with Session() as s:
        await s.send(LLMFullResponseStartFrame(), calls("a", "b"), in_progress("a"), in_progress("b"))
        await s.send(LLMFullResponseEndFrame(), result("a", {"ok": 1}))
        assert not s.up(LLMContextFrame)
        await s.send(result("b", {"error": "timed out"}))
        assert len(s.up(LLMContextFrame)) == 1
        tools = [m["content"] for m in s.new_messages if m["role"] == "tool"]
        assert tools == ['{"ok": 1}', '{"error": "timed out"}']
        assert_valid_openai(s.context.messages)


async def test_a_fast_result_waits_for_the_end_of_its_reply(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(LLMFullResponseStartFrame(), calls("a"), spoken("One moment."), in_progress("a"))
        await s.send(result("a", 42), spoken("Still here."))
        assert not s.up(LLMContextFrame)
        await s.send(LLMFullResponseEndFrame())
        assert len(s.up(LLMContextFrame)) == 1
        # The whole reply is in the context before the LLM runs again.
        assert s.new_messages[-1] == {"role": "assistant", "content": "Still here."}
        assert_valid_openai(s.context.messages)


async def test_no_rerun_while_the_user_speaks(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(LLMFullResponseStartFrame(), calls("a"), in_progress("a"), LLMFullResponseEndFrame())
        await s.send(UserStartedSpeakingFrame(), result("a", 1))
        assert not s.up(LLMContextFrame)
        assert s.new_messages[-1]["content"] == "1"


@pytest.mark.parametrize("with_started_frame", [True, False])
async def test_calls_without_started_frame_group_by_reply(
    with_started_frame: bool, no_leaked_tasks: None
) -> None:
    async with Session() as s:
        head: list[Frame] = [calls("a", "b")] if with_started_frame else []
        await s.send(
            LLMFullResponseStartFrame(), *head, in_progress("a"), in_progress("b"), LLMFullResponseEndFrame()
        )
        await s.send(result("a", None))
        assert not s.up(LLMContextFrame)
        await s.send(result("b", None))
        assert len(s.up(LLMContextFrame)) == 1
        assert [m["content"] for m in s.new_messages if m["role"] == "tool"] == ["COMPLETED", "COMPLETED"]


# -- a long reply costs time linear in its length ------------------------------------------------


async def _cpu_secs_to_aggregate(tokens: int) -> float:
    """CPU time the aggregator takes for one reply of ``tokens`` 100-character LLM tokens."""
    aggregator = LLMAssistantAggregator(LLMContext())
    frames = [LLMTextFrame("x" * 99 + " ") for _ in range(tokens)]
    await aggregator.process_frame(LLMFullResponseStartFrame(), DOWNSTREAM)
    started = time.process_time()
    for frame in frames:
        await aggregator.process_frame(frame, DOWNSTREAM)
    await aggregator.process_frame(LLMFullResponseEndFrame(), DOWNSTREAM)
    elapsed = time.process_time() - started
    assert len(aggregator.context.messages[-1]["content"]) == 100 * tokens - 1
    return elapsed


async def test_a_long_reply_is_aggregated_in_linear_time() -> None:
    # Growing one string per token copied the reply so far each time: 10x the tokens took 540x
    # the time (1.75 s for a 1 MB reply). CPU time, best of three, so a busy machine matters less.
    small = min([await _cpu_secs_to_aggregate(1_000) for _ in range(3)])
    large = min([await _cpu_secs_to_aggregate(10_000) for _ in range(3)])
    ratio = large / max(small, 1e-4)
    assert ratio < 30, f"10x the reply took {ratio:.0f}x the time (linear is 10x)"
