"""Typed text (a wire's text frame) is bounded before it reaches the LLM, like RTVI's send-text."""

from __future__ import annotations

from voxloop.context import LLMContext
from voxloop.context.user_aggregator import LLMUserAggregator
from voxloop.frames import ErrorFrame, InputTextRawFrame, LLMContextFrame
from voxloop.testing import PipelineHarness


async def test_typed_text_over_the_limit_is_reported_and_not_sent(no_leaked_tasks: None) -> None:
    context = LLMContext([{"role": "system", "content": "be brief"}])
    aggregator = LLMUserAggregator(context, max_typed_text_chars=20)
    async with PipelineHarness(aggregator) as h:
        await h.push(InputTextRawFrame("x" * 21))
        error = await h.up_recorder.wait_for(ErrorFrame)
        await h.push(InputTextRawFrame("  twenty characters! "))  # 19 once stripped
        await h.down_recorder.wait_for(LLMContextFrame)
    assert error.error == "typed text of 21 characters is over the limit of 20: not sent" and not error.fatal
    assert [m["content"] for m in context.messages if m["role"] == "user"] == ["twenty characters!"]
    assert len(h.down_recorder.of_type(LLMContextFrame)) == 1


async def test_the_default_typed_text_limit_matches_rtvis(no_leaked_tasks: None) -> None:
    context = LLMContext()
    async with PipelineHarness(LLMUserAggregator(context)) as h:
        await h.push(InputTextRawFrame("y" * 16_385))
        await h.up_recorder.wait_for(ErrorFrame)
        await h.push(InputTextRawFrame("y" * 16_384))
        await h.down_recorder.wait_for(LLMContextFrame)
    assert [len(m["content"]) for m in context.messages] == [16_384]
