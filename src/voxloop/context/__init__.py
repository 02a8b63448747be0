"""The conversation: LLM context, tools, and the aggregators that write what was said into it."""

from __future__ import annotations

from .aggregator_pair import LLMContextAggregatorPair
from .assistant_aggregator import LLMAssistantAggregator
from .context import LLMContext, Message
from .tools import FunctionSchema, ToolsSchema
from .user_aggregator import ContextSummarizer, LLMUserAggregator

__all__ = [
    "ContextSummarizer",
    "FunctionSchema",
    "LLMAssistantAggregator",
    "LLMContext",
    "LLMContextAggregatorPair",
    "LLMUserAggregator",
    "Message",
    "ToolsSchema",
]
