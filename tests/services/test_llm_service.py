"""LLMService base: response frames, skip_tts, settings, metrics, errors, interruption."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from voxloop.context import LLMContext
from voxloop.frames import (
    ErrorCategory,
    ErrorFrame,
    FunctionCallInProgressFrame,
    InterruptionFrame,
    LLMConfigureOutputFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    LLMTokenUsage,
    LLMUpdateSettingsFrame,
    LLMUsageMetricsData,
    MetricsFrame,
    ProcessingMetricsData,
    TextFrame,
    TTFBMetricsData,
)
from voxloop.pipeline import PipelineParams
from voxloop.services import LLMOutput, LLMService, LLMServiceError, LLMToolCall
from voxloop.testing import FakeClock, PipelineHarness

pytestmark = pytest.mark.usefixtures("no_leaked_tasks")


class ScriptedLLM(LLMService):
    """Yields what the test scripted per response; can hold a response open until released."""

    def __init__(self, *responses: list[Any], **kwargs: Any) -> None:
        kwargs.setdefault("model", "scripted")
        super().__init__(**kwargs)
        self.responses = list(responses)
        self.contexts: list[Any] = []
        self.settings_seen: list[Any] = []
        self.release = asyncio.Event()
        self.holding = asyncio.Event()
        self.closed_early = 0

    async def generate(self, context: Any) -> AsyncGenerator[LLMOutput, None]:
        self.contexts.append(context)
        self.settings_seen.append((self.settings.model, self.settings.temperature, self.settings.max_tokens))
        items = self.responses.pop(0) if self.responses else ["ok"]
        finished = False
        try:
            for item in items:
                if item == "HOLD":
                    self.holding.set()
                    await self.release.wait()
                elif isinstance(item, Exception):
                    raise item
                elif item == "TICK":
                    clock = self.clock
                    assert isinstance(clock, FakeClock)
                    await clock.sleep(0.25)
                else:
                    yield item
            finished = True
        finally:
            if not finished:
                self.closed_early += 1


def user_context(text: str = "hi") -> LLMContext:
    return LLMContext([{"role": "user", "content": text}])


def texts(frames: list[Any]) -> list[str]:
    return [f.text for f in frames if isinstance(f, LLMTextFrame)]


def kinds(frames: list[Any]) -> list[type]:
    return [type(f) for f in frames if not isinstance(f, MetricsFrame)]


async def test_response_is_framed_and_streamed_in_deltas() -> None:
    llm = ScriptedLLM(["Hello", " there", "", "!"])
    context = user_context()
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    assert kinds(h.down)[:5] == [
        LLMFullResponseStartFrame,
        LLMTextFrame,
        LLMTextFrame,
        LLMTextFrame,
        LLMFullResponseEndFrame,
    ]
    assert texts(h.down) == ["Hello", " there", "!"]
    assert llm.contexts == [context]
    assert all(f.includes_inter_frame_spaces for f in h.down if isinstance(f, LLMTextFrame))


async def test_context_from_upstream_runs_too() -> None:
    llm = ScriptedLLM(["from below"])
    async with PipelineHarness(llm) as h:
        await h.push_up(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    assert texts(h.down) == ["from below"]
    assert not any(isinstance(f, LLMContextFrame) for f in h.down + h.up)  # consumed


async def test_configure_output_marks_text_until_changed() -> None:
    llm = ScriptedLLM(["spoken"], ["silent"], ["spoken again"])
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.push(LLMConfigureOutputFrame(skip_tts=True), LLMContextFrame(user_context()))
        await h.push(LLMConfigureOutputFrame(skip_tts=False), LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=3)
    marks = {f.text: f.skip_tts for f in h.down if isinstance(f, LLMTextFrame)}
    assert marks == {"spoken": None, "silent": True, "spoken again": False}
    ends = [f.skip_tts for f in h.down if isinstance(f, LLMFullResponseEndFrame)]
    assert ends == [None, True, False]
    assert len([f for f in h.down if isinstance(f, LLMConfigureOutputFrame)]) == 2  # passed on


async def test_update_settings_applies_to_next_response() -> None:
    llm = ScriptedLLM(["a"], ["b"], temperature=0.5)
    other = object()
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.push(LLMUpdateSettingsFrame({"model": "bigger", "temperature": 0.1, "max_tokens": 50}))
        await h.push(LLMUpdateSettingsFrame({"temperature": 1.5}, service=other))  # not for us
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
    assert llm.settings_seen == [("scripted", 0.5, None), ("bigger", 0.1, 50)]
    forwarded = [f for f in h.down if isinstance(f, LLMUpdateSettingsFrame)]
    assert len(forwarded) == 2  # service=None and another service's: passed on


async def test_unknown_settings_go_to_extra() -> None:
    llm = ScriptedLLM()
    llm.update_settings({"reasoning_effort": "low", "top_p": 0.9})
    assert llm.settings.extra == {"reasoning_effort": "low"} and llm.settings.top_p == 0.9
    llm.update_settings({"reasoning_effort": None})
    assert llm.settings.extra == {}


async def test_metrics_ttfb_processing_and_usage() -> None:
    clock = FakeClock()
    usage = LLMTokenUsage(prompt_tokens=12, completion_tokens=3, total_tokens=15)
    llm = ScriptedLLM(["TICK", "first", "TICK", " second", usage])
    params = PipelineParams(enable_metrics=True, enable_usage_metrics=True)
    async with PipelineHarness(llm, params=params, clock=clock) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(LLMFullResponseStartFrame)
        assert clock.sleepers == 1  # the first "TICK": the response waits on the fake clock
        await clock.advance(0.25)
        await clock.advance(0.25)
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    data = [d for f in h.down if isinstance(f, MetricsFrame) for d in f.data]
    ttfb = [d.value for d in data if isinstance(d, TTFBMetricsData) and d.value > 0]
    processing = [d.value for d in data if isinstance(d, ProcessingMetricsData) and d.value > 0]
    usages = [d.value for d in data if isinstance(d, LLMUsageMetricsData)]
    assert ttfb == [pytest.approx(0.25)]
    assert processing == [pytest.approx(0.5)]
    assert usages == [usage]
    assert all(d.model == "scripted" for d in data)


async def test_error_is_reported_response_closed_and_next_context_runs() -> None:
    boom = LLMServiceError("the server is on fire", ErrorCategory.SERVER)
    llm = ScriptedLLM(["partial", boom], ["recovered"])
    errors: list[ErrorFrame] = []
    llm.add_event_handler("on_error", lambda _p, e: errors.append(e))
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
    up_errors = [f for f in h.up if isinstance(f, ErrorFrame)]
    assert len(up_errors) == 1 and errors == up_errors
    assert "the server is on fire" in up_errors[0].error
    assert up_errors[0].category is ErrorCategory.SERVER and not up_errors[0].fatal
    assert texts(h.down) == ["partial", "recovered"]
    assert kinds(h.down).count(LLMFullResponseStartFrame) == 2


async def test_unexpected_exception_is_reported_with_its_type() -> None:
    llm = ScriptedLLM([ValueError("bad token")])
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    (error,) = [f for f in h.up if isinstance(f, ErrorFrame)]
    assert "ValueError: bad token" in error.error


async def test_tool_calls_of_a_failed_response_are_not_run() -> None:
    llm = ScriptedLLM([LLMToolCall("c1", "f", "{}"), RuntimeError("stream broke")])
    ran: list[str] = []

    async def handler(params: Any) -> None:
        ran.append(params.function_name)
        await params.result_callback("x")

    llm.register_function("f", handler)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    assert ran == []
    assert not any(isinstance(f, FunctionCallInProgressFrame) for f in h.down)


async def test_interruption_cancels_the_response_in_flight() -> None:
    llm = ScriptedLLM(["before", "HOLD", "after"], ["next"])
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await llm.holding.wait()
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(InterruptionFrame)
        assert llm.closed_early == 1  # the generator was closed, not left hanging
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    assert texts(h.down) == ["before", "next"]
    ends = [f for f in h.down if isinstance(f, LLMFullResponseEndFrame)]
    assert len(ends) == 1  # the interrupted response is not "ended" after the interruption


async def test_other_frames_pass_through() -> None:
    llm = ScriptedLLM()
    async with PipelineHarness(llm) as h:
        await h.push(TextFrame("not for the llm"))
        await h.down_recorder.wait_for(TextFrame)
    assert [f.text for f in h.down if isinstance(f, TextFrame)] == ["not for the llm"]


# -- speculation ----------------------------------------------------------------------------------


async def test_a_speculative_response_is_held_until_confirmed_then_released_in_order() -> None:
    from voxloop.frames import LLMSpeculationFrame

    llm = ScriptedLLM(["Hello", "HOLD", " there", "!"])
    tentative, real = user_context("what"), user_context("what")
    async with PipelineHarness(llm) as h:
        await h.push(LLMSpeculationFrame("start", tentative))
        await llm.holding.wait()  # "Hello" is out of the model: nothing may leave the LLM yet
        assert not any(isinstance(f, LLMFullResponseStartFrame | LLMTextFrame) for f in h.down)
        await h.push(LLMSpeculationFrame("confirm", real))
        await h.down_recorder.wait_for(LLMTextFrame)
        llm.release.set()  # the rest streams live
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    assert llm.contexts == [tentative]  # one run: the speculative one was the answer
    response = (LLMFullResponseStartFrame, LLMTextFrame, LLMFullResponseEndFrame)
    order = [type(f) for f in h.down if isinstance(f, response)]
    assert order == [LLMFullResponseStartFrame, *[LLMTextFrame] * 3, LLMFullResponseEndFrame]
    assert texts(h.down) == ["Hello", " there", "!"]


async def test_a_dropped_speculation_leaves_nothing_and_the_next_response_runs() -> None:
    from voxloop.frames import LLMSpeculationFrame

    llm = ScriptedLLM(["half", "HOLD", " an answer"], ["the answer"])
    async with PipelineHarness(llm) as h:
        await h.push(LLMSpeculationFrame("start", user_context("half")))
        await llm.holding.wait()
        await h.push(LLMSpeculationFrame("drop"))
        await h.push(LLMContextFrame(user_context("half a sentence")))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    assert llm.closed_early == 1  # the speculative generation was cancelled
    assert texts(h.down) == ["the answer"]
    assert len([f for f in h.down if isinstance(f, LLMFullResponseStartFrame)]) == 1
    assert not [f for f in h.down + h.up if isinstance(f, MetricsFrame | ErrorFrame) and "half" in repr(f)]


async def test_speculative_tool_calls_start_only_once_confirmed() -> None:
    from voxloop.frames import LLMSpeculationFrame

    started: list[str] = []
    first, second = [LLMToolCall("call-1", "lookup", "{}"), "HOLD"], [LLMToolCall("call-2", "lookup", "{}")]
    llm = ScriptedLLM(first, second)

    async def lookup(params: Any) -> None:
        started.append(params.tool_call_id)
        await params.result_callback({"ok": True})

    llm.register_function("lookup", lookup)
    async with PipelineHarness(llm) as h:
        await h.push(LLMSpeculationFrame("start", user_context("dropped")))
        await llm.holding.wait()  # its tool call is out of the model
        await h.push(LLMSpeculationFrame("drop"))
        await h.push(LLMSpeculationFrame("start", user_context("kept")))
        await h.push(LLMSpeculationFrame("confirm", user_context("kept")))
        await h.down_recorder.wait_for(FunctionCallInProgressFrame)
    assert started == ["call-2"]
    assert not any(isinstance(f, FunctionCallInProgressFrame) and f.tool_call_id == "call-1" for f in h.down)
