"""voxloop: a fast, reliable framework and server for real-time voice AI agents that speaks RTVI."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
