"""Processors, pipelines, the task that runs them, observers, the runner, and async primitives."""

from __future__ import annotations

from ._async import Mailbox, TaskSet, frame_survives_interruption
from ._events import EventSource
from .clock import Clock, SystemClock
from .metrics import ProcessorMetrics
from .observer import BaseObserver, FramePushed, ObserverHub, SeenFrames
from .parallel import ParallelPipeline
from .pipeline import Pipeline, walk
from .processor import (
    DOWNSTREAM,
    UPSTREAM,
    FrameDirection,
    FrameProcessor,
    FrameProcessorSetup,
)
from .runner import PipelineRunner
from .task import PipelineParams, PipelineTask

__all__ = [
    "DOWNSTREAM",
    "UPSTREAM",
    "BaseObserver",
    "Clock",
    "EventSource",
    "FrameDirection",
    "FrameProcessor",
    "FrameProcessorSetup",
    "FramePushed",
    "Mailbox",
    "ObserverHub",
    "ParallelPipeline",
    "Pipeline",
    "PipelineParams",
    "PipelineRunner",
    "PipelineTask",
    "ProcessorMetrics",
    "SeenFrames",
    "SystemClock",
    "TaskSet",
    "frame_survives_interruption",
    "walk",
]
