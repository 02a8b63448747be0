"""Audio helpers: PCM conversion, resampling, input format checks, voice activity detection."""

from __future__ import annotations

from .convert import PCMConverter, to_mono
from .input_format import SAMPLE_RATES, AudioFormatProblem, check_audio_format
from .vad import PreRoll, SileroVAD, VADEvent

__all__ = [
    "SAMPLE_RATES",
    "AudioFormatProblem",
    "PCMConverter",
    "PreRoll",
    "SileroVAD",
    "VADEvent",
    "check_audio_format",
    "to_mono",
]
