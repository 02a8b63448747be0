"""The conversation: LLM context, tools, and the aggregators that write what was said into it."""

from __future__ import annotations

from .context import LLMContext, Message
from .tools import FunctionSchema, ToolsSchema

__all__ = ["FunctionSchema", "LLMContext", "Message", "ToolsSchema"]
