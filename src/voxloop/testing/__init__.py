"""Test kit for voxloop users and for voxloop itself: drive processors and watch what comes out."""

from __future__ import annotations

from .clock import FakeClock, settle
from .harness import FrameRecorder, PipelineHarness, run_test

__all__ = ["FakeClock", "FrameRecorder", "PipelineHarness", "run_test", "settle"]
