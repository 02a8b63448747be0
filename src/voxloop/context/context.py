"""LLMContext: the conversation, in OpenAI's chat-message shape, shared by reference.

One context object is shared by the user aggregator (writes what the user said), the LLM (reads
it), and the assistant aggregator (writes what the bot actually said, and function calls and
results). ``LLMContextFrame`` carries the object itself, so all of them see the same messages.

Messages are plain dicts: ``{"role": "system" | "developer" | "user" | "assistant" | "tool",
"content": ...}``, assistant messages may carry ``tool_calls``, tool messages a ``tool_call_id``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .tools import FunctionSchema, ToolsSchema

Message = dict[str, Any]


class LLMContext:
    """The messages, tools and tool choice of one conversation."""

    def __init__(
        self,
        messages: Iterable[Mapping[str, Any]] | None = None,
        tools: ToolsSchema | Iterable[FunctionSchema | Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> None:
        self._messages: list[Message] = [dict(message) for message in messages or ()]
        self.tools: ToolsSchema = ToolsSchema.of(tools)
        self.tool_choice: Any = tool_choice

    def __repr__(self) -> str:
        return f"LLMContext({len(self._messages)} messages, tools={self.tools.names()})"

    @property
    def messages(self) -> list[Message]:
        """The live list (do not keep it across awaits if others may replace it)."""
        return self._messages

    def get_messages(self) -> list[Message]:
        """A deep copy, safe to hand to a client library or to keep."""
        return copy.deepcopy(self._messages)

    def add_message(self, message: Mapping[str, Any]) -> None:
        self._messages.append(dict(message))

    def add_messages(self, messages: Iterable[Mapping[str, Any]]) -> None:
        self._messages.extend(dict(message) for message in messages)

    def set_messages(self, messages: Iterable[Mapping[str, Any]]) -> None:
        self._messages = [dict(message) for message in messages]

    def transform_messages(self, transform: Callable[[list[Message]], list[Message]]) -> None:
        """Replace the messages with ``transform(messages)`` (e.g. a summary of a long call)."""
        self._messages = list(transform(self._messages))

    def set_tools(self, tools: ToolsSchema | Iterable[FunctionSchema | Mapping[str, Any]] | None) -> None:
        self.tools = ToolsSchema.of(tools)

    def set_tool_choice(self, tool_choice: Any) -> None:
        self.tool_choice = tool_choice

    @property
    def system_message(self) -> str | None:
        """The text of the first system (or developer) message, if the context starts with one."""
        if self._messages and self._messages[0].get("role") in ("system", "developer"):
            content = self._messages[0].get("content")
            return content if isinstance(content, str) else None
        return None

    def last_message(self, role: str | None = None) -> Message | None:
        """The newest message (of ``role``, if given)."""
        for message in reversed(self._messages):
            if role is None or message.get("role") == role:
                return message
        return None
