"""Audio helpers: PCM conversion, resampling, voice activity detection."""

from __future__ import annotations

from .convert import PCMConverter, to_mono
from .vad import PreRoll, SileroVAD, VADEvent

__all__ = ["PCMConverter", "PreRoll", "SileroVAD", "VADEvent", "to_mono"]
