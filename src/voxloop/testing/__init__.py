"""Test kit for voxloop users and for voxloop itself: drive processors and watch what comes out."""

from __future__ import annotations

from .clock import FakeClock, settle
from .harness import FrameRecorder, PipelineHarness, run_test
from .memory_transport import MemoryClient, MemoryTransport
from .rtvi_client import RTVIClient, RTVIErrorResponse, RTVIProtocolError, load_wav

__all__ = [
    "FakeClock",
    "FrameRecorder",
    "MemoryClient",
    "MemoryTransport",
    "PipelineHarness",
    "RTVIClient",
    "RTVIErrorResponse",
    "RTVIProtocolError",
    "load_wav",
    "run_test",
    "settle",
]
