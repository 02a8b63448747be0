"""Payloads carried by :class:`~voxloop.frames.MetricsFrame`: timings and usage per processor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MetricsData:
    """One measurement, attributed to the processor (by name) and model that produced it."""

    processor: str
    model: str | None = None


@dataclass
class TTFBMetricsData(MetricsData):
    """Time to first byte: from a request to the first useful output, in seconds."""

    value: float = 0.0


@dataclass
class ProcessingMetricsData(MetricsData):
    """Time a processor spent on one unit of work, in seconds."""

    value: float = 0.0


@dataclass
class LLMTokenUsage:
    """Token counts of one LLM response (OpenAI's names); optional counts are None when unknown."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    input_audio_tokens: int | None = None
    output_audio_tokens: int | None = None
    cache_read_input_audio_tokens: int | None = None


@dataclass
class LLMUsageMetricsData(MetricsData):
    """Token usage of one LLM response."""

    value: LLMTokenUsage | None = None


@dataclass
class TTSUsageMetricsData(MetricsData):
    """Characters sent to a TTS service."""

    value: int = 0


@dataclass
class STTUsageMetricsData(MetricsData):
    """Seconds of audio sent to an STT service."""

    audio_seconds: float = 0.0
