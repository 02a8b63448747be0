"""Services over OpenAI's API and OpenAI-compatible servers (needs the ``openai`` extra)."""

from __future__ import annotations

from ._client import PLACEHOLDER_API_KEY, make_client
from ._realtime_settings import InputTranscription, RealtimeSettings, SemanticVAD, ServerVAD
from .llm import OpenAILLMService
from .realtime import OpenAIRealtimeService, RealtimeAuthError
from .stt import OpenAISTTService
from .tts import OpenAITTSService

__all__ = [
    "PLACEHOLDER_API_KEY",
    "InputTranscription",
    "OpenAILLMService",
    "OpenAIRealtimeService",
    "OpenAISTTService",
    "OpenAITTSService",
    "RealtimeAuthError",
    "RealtimeSettings",
    "SemanticVAD",
    "ServerVAD",
    "make_client",
]
