"""Services over OpenAI's API and OpenAI-compatible servers (needs the ``openai`` extra)."""

from __future__ import annotations

from .llm import OpenAILLMService
from .stt import OpenAISTTService
from .tts import OpenAITTSService

__all__ = ["OpenAILLMService", "OpenAISTTService", "OpenAITTSService"]
