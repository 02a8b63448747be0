"""Frames that drive the LLM and its context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._base import ControlFrame, DataFrame, SystemFrame, UninterruptibleFrame


@dataclass(eq=False)
class LLMContextFrame(DataFrame):
    """Run the LLM on this context (an OpenAI-shaped ``voxloop.context.LLMContext``)."""

    context: Any


@dataclass(eq=False)
class LLMSpeculationFrame(SystemFrame):
    """Speculative work on a user turn that is not confirmed yet (from the user aggregator to the LLM).

    ``action``: "start" (run the LLM on ``context``, a copy holding the tentative user message, and hold
    everything it produces), "confirm" (the turn ended with those words: release what is held and go on
    live; ``context`` is the real conversation, for function calls) or "drop" (the user went on: cancel
    it; nothing it produced ever leaves the LLM). A system frame, so it overtakes the LLM's queue.
    """

    action: str = "start"
    context: Any = None


@dataclass(eq=False)
class LLMRunFrame(DataFrame):
    """Run the LLM on the current context."""


@dataclass(eq=False)
class LLMMessagesAppendFrame(DataFrame):
    """Append messages to the context; run the LLM afterwards if ``run_llm``."""

    messages: list[dict[str, Any]]
    run_llm: bool | None = None


@dataclass(eq=False)
class LLMMessagesUpdateFrame(DataFrame):
    """Replace the context's messages; run the LLM afterwards if ``run_llm``."""

    messages: list[dict[str, Any]]
    run_llm: bool | None = None


@dataclass(eq=False)
class LLMSetToolsFrame(DataFrame):
    """Replace the tools the LLM may call."""

    tools: Any


@dataclass(eq=False)
class LLMSetToolChoiceFrame(DataFrame):
    """Set the tool choice (``"auto"``, ``"none"``, ``"required"`` or a named function)."""

    tool_choice: Any


@dataclass(eq=False)
class LLMFullResponseStartFrame(ControlFrame):
    """An LLM response starts."""

    skip_tts: bool | None = field(init=False, default=None)


@dataclass(eq=False)
class LLMFullResponseEndFrame(ControlFrame):
    """An LLM response ended."""

    skip_tts: bool | None = field(init=False, default=None)


@dataclass(eq=False)
class ServiceUpdateSettingsFrame(ControlFrame, UninterruptibleFrame):
    """Change a service's settings at run time; ``service`` targets one service (None = all)."""

    settings: dict[str, Any]
    service: Any = None


@dataclass(eq=False)
class LLMUpdateSettingsFrame(ServiceUpdateSettingsFrame):
    """Change LLM settings."""


@dataclass(eq=False)
class TTSUpdateSettingsFrame(ServiceUpdateSettingsFrame):
    """Change TTS settings."""


@dataclass(eq=False)
class STTUpdateSettingsFrame(ServiceUpdateSettingsFrame):
    """Change STT settings."""


@dataclass(eq=False)
class LLMConfigureOutputFrame(DataFrame):
    """Whether the LLM's next output should be spoken (``skip_tts=True``: text only)."""

    skip_tts: bool
