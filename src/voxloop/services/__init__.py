"""Services: the LLM, STT and TTS processors a bot is made of (bases here, providers in sub-packages)."""

from __future__ import annotations

from ..frames import FunctionCallResultProperties
from .functions import FunctionCallParams, FunctionCallRunner, FunctionHandler, FunctionRegistration
from .llm import FunctionCallingService, LLMOutput, LLMService, LLMServiceError, LLMSettings, LLMToolCall
from .stt import SegmentedSTTService, STTService, Transcript
from .text_aggregator import SentenceAggregator
from .tts import TTSOutput, TTSService, WordTiming

__all__ = [
    "STTService",
    "SegmentedSTTService",
    "Transcript",
    "FunctionCallParams",
    "FunctionCallingService",
    "FunctionCallResultProperties",
    "FunctionCallRunner",
    "FunctionHandler",
    "FunctionRegistration",
    "LLMOutput",
    "LLMService",
    "LLMServiceError",
    "LLMSettings",
    "LLMToolCall",
    "TTSOutput",
    "TTSService",
    "WordTiming",
    "SentenceAggregator",
]
