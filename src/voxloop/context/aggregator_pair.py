"""The user and assistant aggregators of one conversation, made together around one context."""

from __future__ import annotations

from ..turns.end_of_turn import EndOfTurnDetector
from ..turns.params import AssistantAggregatorParams, UserTurnParams
from .assistant_aggregator import LLMAssistantAggregator
from .context import LLMContext
from .user_aggregator import ContextSummarizer, LLMUserAggregator


class LLMContextAggregatorPair:
    """``pair.user()`` goes after the STT, ``pair.assistant()`` after the output transport.

    Both share ``context``: the user side writes the user's turns and runs the LLM, the assistant side
    writes what the bot played and its function calls.
    """

    def __init__(
        self,
        context: LLMContext | None = None,
        *,
        user_params: UserTurnParams | None = None,
        assistant_params: AssistantAggregatorParams | None = None,
        context_summarizer: ContextSummarizer | None = None,
        summarize_after_messages: int = 40,
        turn_detector: EndOfTurnDetector | None = None,
    ) -> None:
        self.context = context if context is not None else LLMContext()
        self._user = LLMUserAggregator(
            self.context,
            user_params,
            context_summarizer=context_summarizer,
            summarize_after_messages=summarize_after_messages,
            turn_detector=turn_detector,
        )
        self._assistant = LLMAssistantAggregator(self.context, assistant_params)

    def user(self) -> LLMUserAggregator:
        return self._user

    def assistant(self) -> LLMAssistantAggregator:
        return self._assistant
