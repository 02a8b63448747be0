"""Audio helpers: PCM conversion and resampling."""

from __future__ import annotations

from .convert import PCMConverter, to_mono

__all__ = ["PCMConverter", "to_mono"]
