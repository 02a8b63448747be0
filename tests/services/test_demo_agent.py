"""The offline demo agent: honest canned answers, and the time through a real function call."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from voxloop.context import LLMContext
from voxloop.context.assistant_aggregator import LLMAssistantAggregator
from voxloop.frames import (
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallsStartedFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
)
from voxloop.pipeline import Pipeline
from voxloop.services.local import DemoAgentLLM
from voxloop.testing import PipelineHarness

pytestmark = pytest.mark.usefixtures("no_leaked_tasks")

NOON = datetime(2025, 12, 2, 14, 5, tzinfo=UTC)


def agent() -> DemoAgentLLM:
    return DemoAgentLLM(now=lambda: NOON)


async def reply_to(text: str) -> tuple[list[str], LLMContext]:
    context = LLMContext([{"role": "user", "content": text}])
    async with PipelineHarness(agent()) as h:
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    return [f.text for f in h.down if isinstance(f, LLMTextFrame)], context


async def test_greeting_is_honest_and_says_how_to_configure_a_real_llm() -> None:
    deltas, _ = await reply_to("Hello there!")
    answer = "".join(deltas)
    assert answer.startswith("Hello! I'm the voxloop demo agent")
    assert "not a real language model" in answer
    assert "OPENAI_API_KEY" in answer and "OPENAI_BASE_URL" in answer and "Ollama" in answer


async def test_answer_is_streamed_in_word_sized_deltas() -> None:
    deltas, _ = await reply_to("help")
    assert len(deltas) > 10
    assert all(len(d.split()) == 1 for d in deltas)
    assert "".join(deltas).startswith("I'm the offline demo agent.")


async def test_anything_else_is_repeated() -> None:
    deltas, _ = await reply_to("The cat sat on the mat.")
    answer = "".join(deltas)
    assert answer.startswith("You said: The cat sat on the mat. I'm the demo agent")
    assert "OPENAI_API_KEY" in answer


async def test_deterministic() -> None:
    first, _ = await reply_to("tell me a story")
    second, _ = await reply_to("tell me a story")
    assert first == second and first


async def test_time_goes_through_a_real_function_call_and_the_real_aggregator() -> None:
    context = LLMContext([{"role": "user", "content": "What time is it?"}])
    llm = agent()
    assert llm.has_function("get_current_time")
    pipeline = Pipeline([llm, LLMAssistantAggregator(context)])
    async with PipelineHarness(pipeline) as h:
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
    assert "get_current_time" in context.tools.names()  # added to the context for the LLM
    (started,) = [f for f in h.down if isinstance(f, FunctionCallsStartedFrame)]
    assert [c.function_name for c in started.function_calls] == ["get_current_time"]
    (result,) = [f for f in h.down if isinstance(f, FunctionCallResultFrame)]
    assert result.result["time"] == "14:05"
    answer = "".join(f.text for f in h.down if isinstance(f, LLMTextFrame))
    assert answer == "It's 14:05 (UTC)."
    roles = [m["role"] for m in context.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert json.loads(context.messages[2]["content"])["time"] == "14:05"
    assert context.messages[3]["content"] == "It's 14:05 (UTC)."


async def test_date_with_the_aggregator_simulated() -> None:
    context = LLMContext([{"role": "user", "content": "what's the date today"}])
    async with PipelineHarness(agent()) as h:
        await h.push(LLMContextFrame(context))
        result = await h.down_recorder.wait_for(FunctionCallResultFrame)
        (progress,) = [f for f in h.down if isinstance(f, FunctionCallInProgressFrame)]
        assert progress.arguments == {"what": "date"}
        context.add_messages(
            [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": progress.tool_call_id,
                            "type": "function",
                            "function": {
                                "name": progress.function_name,
                                "arguments": json.dumps(progress.arguments),
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": result.tool_call_id, "content": json.dumps(result.result)},
            ]
        )
        await h.push_up(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
    answer = "".join(f.text for f in h.down if isinstance(f, LLMTextFrame))
    assert answer == "Today is Tuesday, 2 December 2025."


async def test_a_cancelled_time_call_is_answered_gracefully() -> None:
    context = LLMContext(
        [
            {"role": "user", "content": "what time is it"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c9",
                        "type": "function",
                        "function": {"name": "get_current_time", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c9", "content": "CANCELLED"},
        ]
    )
    async with PipelineHarness(agent()) as h:
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    answer = "".join(f.text for f in h.down if isinstance(f, LLMTextFrame))
    assert answer == "Sorry, I couldn't get the time just now."
