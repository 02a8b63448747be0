"""Function (tool) calls requested by the LLM, their progress and their results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._base import ControlFrame, DataFrame, SystemFrame, UninterruptibleFrame


@dataclass
class FunctionCallFromLLM:
    """One call the LLM asked for."""

    function_name: str
    tool_call_id: str
    arguments: Mapping[str, Any]
    context: Any = None


@dataclass(eq=False)
class FunctionCallsStartedFrame(SystemFrame):
    """The LLM asked for these calls; they are about to run."""

    function_calls: list[FunctionCallFromLLM]


@dataclass(eq=False)
class FunctionCallInProgressFrame(ControlFrame, UninterruptibleFrame):
    """A call is running (the context records it as pending)."""

    function_name: str
    tool_call_id: str
    arguments: Mapping[str, Any]
    cancel_on_interruption: bool = False


@dataclass
class FunctionCallResultProperties:
    """What to do once a result is in: run the LLM again, and a hook after the context changed."""

    run_llm: bool | None = None
    on_context_updated: Callable[[], Awaitable[None]] | None = None


@dataclass(eq=False)
class FunctionCallResultFrame(DataFrame, UninterruptibleFrame):
    """The result of a call, written into the context."""

    function_name: str
    tool_call_id: str
    arguments: Mapping[str, Any]
    result: Any
    run_llm: bool | None = None
    properties: FunctionCallResultProperties | None = None


@dataclass(eq=False)
class FunctionCallCancelFrame(SystemFrame):
    """A running call was cancelled (interruption, timeout, or the LLM's request)."""

    function_name: str
    tool_call_id: str
