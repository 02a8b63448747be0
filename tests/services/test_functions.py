"""Function calling in LLMService: announcements, handlers in tasks, timeouts, interruptions, clients."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_llm_service import ScriptedLLM, user_context

from voxloop.frames import (
    ErrorFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallResultProperties,
    FunctionCallsStartedFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
)
from voxloop.services import FunctionCallParams, LLMToolCall
from voxloop.testing import FakeClock, PipelineHarness

pytestmark = pytest.mark.usefixtures("no_leaked_tasks")


def call(call_id: str, name: str, arguments: str = "{}") -> LLMToolCall:
    return LLMToolCall(call_id, name, arguments)


def of(frames: list[Frame], kind: type) -> list[Any]:
    return [f for f in frames if isinstance(f, kind)]


class Handlers:
    """Handlers a test can hold and release, recording what they saw."""

    def __init__(self) -> None:
        self.entered: dict[str, asyncio.Event] = {}
        self.release: dict[str, asyncio.Event] = {}
        self.cancelled: list[str] = []
        self.params: list[FunctionCallParams] = []
        self.log: list[str] = []  # "enter c1", "exit c1": the order handlers ran in

    def slow(self, result: Any = "done") -> Any:
        async def handler(params: FunctionCallParams) -> None:
            name = params.tool_call_id
            self.params.append(params)
            self.log.append(f"enter {name}")
            self.entered.setdefault(name, asyncio.Event()).set()
            try:
                await self.release.setdefault(name, asyncio.Event()).wait()
            except asyncio.CancelledError:
                self.cancelled.append(name)
                raise
            await params.result_callback(result)
            self.log.append(f"exit {name}")

        return handler

    async def entered_(self, call_id: str) -> None:
        await self.entered.setdefault(call_id, asyncio.Event()).wait()

    def let_go(self, call_id: str) -> None:
        self.release.setdefault(call_id, asyncio.Event()).set()


async def test_frames_of_one_call_in_order_both_ways() -> None:
    llm = ScriptedLLM(["Let me check.", call("c1", "get_weather", '{"city": "Paris"}')])

    async def weather(params: FunctionCallParams) -> None:
        assert params.arguments == {"city": "Paris"} and params.llm is llm
        await params.result_callback({"forecast": "sunny"})

    llm.register_function("get_weather", weather)
    context = user_context("weather?")
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(FunctionCallResultFrame)
        await h.up_recorder.wait_for(FunctionCallResultFrame)
    down = [type(f) for f in h.down if not isinstance(f, MetricsFrame)]
    assert down[:6] == [
        LLMFullResponseStartFrame,
        LLMTextFrame,
        LLMFullResponseEndFrame,
        FunctionCallsStartedFrame,
        FunctionCallInProgressFrame,
        FunctionCallResultFrame,
    ]
    up = [type(f) for f in h.up if not isinstance(f, MetricsFrame)]
    assert up == [FunctionCallsStartedFrame, FunctionCallInProgressFrame, FunctionCallResultFrame]
    (started,) = of(h.down, FunctionCallsStartedFrame)
    assert [(c.function_name, c.tool_call_id, c.arguments) for c in started.function_calls] == [
        ("get_weather", "c1", {"city": "Paris"})
    ]
    assert started.function_calls[0].context is context
    (progress,) = of(h.down, FunctionCallInProgressFrame)
    assert (progress.function_name, progress.tool_call_id, progress.cancel_on_interruption) == (
        "get_weather",
        "c1",
        True,
    )
    (result,) = of(h.down, FunctionCallResultFrame)
    assert (result.tool_call_id, result.result, result.arguments) == (
        "c1",
        {"forecast": "sunny"},
        {"city": "Paris"},
    )
    assert result.broadcast_sibling_id == of(h.up, FunctionCallResultFrame)[0].id
    assert context.messages == [{"role": "user", "content": "weather?"}]  # the LLM never edits the context


async def test_slow_handler_does_not_block_other_frames() -> None:
    handlers = Handlers()
    llm = ScriptedLLM([call("c1", "slow")], ["meanwhile"])
    llm.register_function("slow", handlers.slow())
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await handlers.entered_("c1")
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
        assert of(h.down, FunctionCallResultFrame) == []  # the handler is still running
        assert [f.text for f in of(h.down, LLMTextFrame)] == ["meanwhile"]
        handlers.let_go("c1")
        await h.down_recorder.wait_for(FunctionCallResultFrame)
    assert of(h.down, FunctionCallResultFrame)[0].result == "done"


async def test_calls_of_one_response_run_in_parallel() -> None:
    handlers = Handlers()
    llm = ScriptedLLM([call("a", "slow"), call("b", "slow")])
    llm.register_function("slow", handlers.slow())
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await handlers.entered_("a")
        await handlers.entered_("b")  # both running before either finished
        handlers.let_go("b")
        await h.down_recorder.wait_for(FunctionCallResultFrame)
        handlers.let_go("a")
        await h.down_recorder.wait_for(FunctionCallResultFrame, count=2)
    assert [f.tool_call_id for f in of(h.down, FunctionCallInProgressFrame)] == ["a", "b"]
    assert [f.tool_call_id for f in of(h.down, FunctionCallResultFrame)] == ["b", "a"]
    (started,) = of(h.down, FunctionCallsStartedFrame)
    assert [c.tool_call_id for c in started.function_calls] == ["a", "b"]


async def test_calls_can_run_one_after_another() -> None:
    handlers = Handlers()
    llm = ScriptedLLM([call("a", "slow"), call("b", "slow")], run_in_parallel=False)
    llm.register_function("slow", handlers.slow())
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await handlers.entered_("a")
        assert "b" not in handlers.entered
        handlers.let_go("a")
        await handlers.entered_("b")
        handlers.let_go("b")
        await h.down_recorder.wait_for(FunctionCallResultFrame, count=2)
    assert [f.tool_call_id for f in of(h.down, FunctionCallResultFrame)] == ["a", "b"]
    # b's handler started only once a's had given its result (in parallel, both enter first).
    assert handlers.log == ["enter a", "exit a", "enter b", "exit b"]


async def test_timeout_cancels_the_handler_and_tells_the_llm() -> None:
    clock = FakeClock()
    handlers = Handlers()
    llm = ScriptedLLM([call("c1", "slow")])
    llm.register_function("slow", handlers.slow(), timeout_secs=2.0)
    async with PipelineHarness(llm, clock=clock) as h:
        await h.push(LLMContextFrame(user_context()))
        await handlers.entered_("c1")
        await clock.advance(1.9)
        assert of(h.down, FunctionCallResultFrame) == []
        await clock.advance(0.2)
        await h.down_recorder.wait_for(FunctionCallResultFrame)
        assert handlers.cancelled == ["c1"]  # stopped before the result went out
        handlers.let_go("c1")  # too late: the handler is gone
    assert handlers.cancelled == ["c1"] and handlers.log == ["enter c1"]
    # Settled by a result that tells the LLM, in order with the batch's other results: no cancel frame.
    assert of(h.down, FunctionCallCancelFrame) == [] and of(h.up, FunctionCallCancelFrame) == []
    (result,) = of(h.down, FunctionCallResultFrame)
    assert (result.function_name, result.tool_call_id) == ("slow", "c1")
    assert len(of(h.up, FunctionCallResultFrame)) == 1
    assert "timed out after 2 seconds" in result.result["error"]


async def test_service_default_timeout_applies_to_client_functions_and_late_results_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    llm = ScriptedLLM([call("c1", "show_map")], function_call_timeout_secs=5.0)
    llm.register_function("show_map", None)  # client-side
    async with PipelineHarness(llm, clock=clock) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(FunctionCallInProgressFrame)
        await clock.advance(5.0)
        await h.down_recorder.wait_for(FunctionCallResultFrame)
        late = FunctionCallResultFrame("show_map", "c1", {}, {"shown": True})
        await h.push(late)  # leaving the block ends the task: the late frame is handled before its end
    assert late not in h.down
    assert len(of(h.down, FunctionCallResultFrame)) == 1
    assert any("late result for show_map (c1) ignored" in r.getMessage() for r in caplog.records)


async def test_client_side_function_is_settled_by_the_clients_result() -> None:
    clock = FakeClock()
    llm = ScriptedLLM([call("c1", "show_map", '{"place": "Rome"}')])
    llm.register_function("show_map", None, timeout_secs=3.0)
    async with PipelineHarness(llm, clock=clock) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(FunctionCallInProgressFrame)
        assert llm.function_runner.pending_calls == ["c1"]
        from_client = FunctionCallResultFrame("show_map", "c1", {"place": "Rome"}, {"shown": True})
        await h.push(from_client)  # what RTVI pushes from the top of the pipeline
        await h.down_recorder.wait_for(FunctionCallResultFrame)
        await clock.advance(10.0)  # the timeout was stopped
    assert of(h.down, FunctionCallResultFrame) == [from_client]  # forwarded as it came, once
    assert of(h.down, FunctionCallCancelFrame) == []
    assert of(h.up, FunctionCallResultFrame) == []
    assert llm.function_runner.pending_calls == []


async def test_results_of_calls_it_never_made_pass_on() -> None:
    llm = ScriptedLLM()
    async with PipelineHarness(llm) as h:
        foreign = FunctionCallResultFrame("x", "somebody-elses", {}, "r")
        await h.push(foreign)
        await h.down_recorder.wait_for(FunctionCallResultFrame)
    assert of(h.down, FunctionCallResultFrame) == [foreign]


@pytest.mark.parametrize("cancel_on_interruption", [True, False])
async def test_interruption_cancels_only_functions_that_ask_for_it(cancel_on_interruption: bool) -> None:
    handlers = Handlers()
    llm = ScriptedLLM([call("c1", "slow")])
    llm.register_function("slow", handlers.slow(), cancel_on_interruption=cancel_on_interruption)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await handlers.entered_("c1")
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(InterruptionFrame)  # the runner had the interruption before this
        handlers.let_go("c1")
        if cancel_on_interruption:
            await h.down_recorder.wait_for(FunctionCallCancelFrame)
        else:
            await h.down_recorder.wait_for(FunctionCallResultFrame)
    (progress,) = of(h.down, FunctionCallInProgressFrame)
    assert progress.cancel_on_interruption is cancel_on_interruption
    if cancel_on_interruption:
        assert handlers.cancelled == ["c1"]
        assert of(h.down, FunctionCallResultFrame) == []
    else:
        assert handlers.cancelled == []
        assert of(h.down, FunctionCallCancelFrame) == []
        assert of(h.down, FunctionCallResultFrame)[0].result == "done"


async def test_raising_handler_reports_an_error_and_tells_the_llm() -> None:
    llm = ScriptedLLM([call("c1", "broken")], ["still fine"])

    async def broken(params: FunctionCallParams) -> None:
        raise RuntimeError("database down")

    llm.register_function("broken", broken)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(FunctionCallResultFrame)
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
    (error,) = of(h.up, ErrorFrame)
    assert "broken" in error.error and "database down" in error.error and not error.fatal
    (result,) = of(h.down, FunctionCallResultFrame)
    assert "failed" in result.result["error"]
    assert [f.text for f in of(h.down, LLMTextFrame)] == ["still fine"]


async def test_unknown_function_gets_a_not_available_result() -> None:
    llm = ScriptedLLM([call("c1", "launch_rocket")])
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(FunctionCallResultFrame)
    assert [f.tool_call_id for f in of(h.down, FunctionCallInProgressFrame)] == ["c1"]
    (result,) = of(h.down, FunctionCallResultFrame)
    assert "not available" in result.result["error"]


async def test_invalid_json_arguments_are_answered_not_run() -> None:
    ran: list[str] = []

    async def handler(params: FunctionCallParams) -> None:
        ran.append(params.function_name)

    llm = ScriptedLLM([call("c1", "f", '{"city": ')])
    llm.register_function("f", handler)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(FunctionCallResultFrame)
    assert ran == []
    assert "not valid JSON" in of(h.down, FunctionCallResultFrame)[0].result["error"]


async def test_catch_all_handler_and_registry() -> None:
    seen: list[str] = []

    async def anything(params: FunctionCallParams) -> None:
        seen.append(params.function_name)
        await params.result_callback("ok", properties=FunctionCallResultProperties(run_llm=False))

    llm = ScriptedLLM([call("c1", "whatever")])
    assert not llm.has_function("whatever")
    llm.register_function(None, anything)
    assert llm.has_function("whatever")
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await h.down_recorder.wait_for(FunctionCallResultFrame)
    assert seen == ["whatever"]
    (result,) = of(h.down, FunctionCallResultFrame)
    assert result.run_llm is False and result.properties is not None
    llm.unregister_function(None)
    assert not llm.has_function("whatever")


async def test_second_result_is_ignored() -> None:
    both_given = asyncio.Event()

    async def twice(params: FunctionCallParams) -> None:
        await params.result_callback("first")
        await params.result_callback("second")
        both_given.set()

    llm = ScriptedLLM([call("c1", "twice")])
    llm.register_function("twice", twice)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await both_given.wait()
    assert [f.result for f in of(h.down, FunctionCallResultFrame)] == ["first"]


async def test_handler_may_answer_later_from_another_task() -> None:
    stash: list[FunctionCallParams] = []

    returned = asyncio.Event()

    async def deferred(params: FunctionCallParams) -> None:
        stash.append(params)  # returns without a result: the call stays open
        returned.set()

    llm = ScriptedLLM([call("c1", "deferred")])
    llm.register_function("deferred", deferred)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await returned.wait()  # the runner has seen the handler return without a result
        assert llm.function_runner.pending_calls == ["c1"]
        await stash[0].result_callback("later")
        await h.down_recorder.wait_for(FunctionCallResultFrame)
    assert of(h.down, FunctionCallResultFrame)[0].result == "later"


async def test_pending_handlers_are_cancelled_at_the_end() -> None:
    handlers = Handlers()
    llm = ScriptedLLM([call("c1", "slow")])
    llm.register_function("slow", handlers.slow())
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(user_context()))
        await handlers.entered_("c1")
    assert handlers.cancelled == ["c1"]  # and no task left behind (fixture)
