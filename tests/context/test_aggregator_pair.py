"""Both aggregators around one context, with a scripted LLM between them."""

from __future__ import annotations

from voxloop.context import LLMAssistantAggregator, LLMContext, LLMContextAggregatorPair, LLMUserAggregator
from voxloop.frames import (
    AssistantTurnStoppedFrame,
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFinishedFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline
from voxloop.testing import FakeClock, PipelineHarness
from voxloop.turns import BotState, UserTurnParams


class ScriptedLLM(FrameProcessor):
    """Answers every context with the next line of its script, as unspoken LLM text."""

    def __init__(self, *lines: str) -> None:
        super().__init__(queued=True)
        self.lines = list(lines)
        self.seen: list[list[dict[str, str]]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, LLMContextFrame):
            self.seen.append(frame.context.get_messages())
            await self.push_frame(LLMFullResponseStartFrame())
            for word in self.lines.pop(0).split(" "):
                await self.push_frame(LLMTextFrame(word + " "))
            await self.push_frame(LLMFullResponseEndFrame())
            return
        await self.push_frame(frame, direction)


async def test_a_spoken_exchange_lands_in_the_shared_context(no_leaked_tasks: None) -> None:
    clock = FakeClock()
    pair = LLMContextAggregatorPair(
        LLMContext([{"role": "system", "content": "s"}]), user_params=UserTurnParams(stop_secs=0.5)
    )
    assert isinstance(pair.user(), LLMUserAggregator) and isinstance(pair.assistant(), LLMAssistantAggregator)
    assert pair.user().context is pair.assistant().context is pair.context
    llm = ScriptedLLM("Hello! How can I help?")
    async with PipelineHarness(Pipeline([pair.user(), llm, pair.assistant()]), clock=clock) as h:
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.2))
        await clock.advance(0.8)
        await h.push(
            VADUserStoppedSpeakingFrame(stop_secs=0.3),
            TranscriptionFrame("hi", user_id="u", finalized=True),
            TranscriptionFinishedFrame("hi"),
        )
        await clock.advance(0.5)
        await h.up_recorder.wait_for(AssistantTurnStoppedFrame)  # the reply is in and over
        assert pair.context.messages == [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
        ]
        # The assistant aggregator told the user aggregator the reply is over.
        assert pair.user().turn_controller.bot_state is BotState.LISTENING
    assert llm.seen == [[{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]]
