"""Frames that start, end, cancel and watch a pipeline, and the errors it reports."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ._base import ControlFrame, SystemFrame, UninterruptibleFrame
from .metrics import MetricsData


@dataclass(eq=False)
class StartFrame(SystemFrame):
    """The first frame every processor sees; carries the pipeline's settings."""

    audio_in_sample_rate: int = 16000
    audio_out_sample_rate: int = 24000
    enable_metrics: bool = False
    enable_usage_metrics: bool = False
    report_only_initial_ttfb: bool = False


@dataclass(eq=False)
class EndFrame(ControlFrame, UninterruptibleFrame):
    """Graceful end: processed after everything queued before it, then the pipeline stops."""

    reason: str | None = None


@dataclass(eq=False)
class StopFrame(ControlFrame, UninterruptibleFrame):
    """Stop the task after everything queued, but keep the processors alive (no clean-up)."""


@dataclass(eq=False)
class CancelFrame(SystemFrame):
    """Immediate end: overtakes queued frames; in-flight work is cancelled."""

    reason: str | None = None


class ErrorCategory(StrEnum):
    """What kind of failure an error is, so policies can tell retryable from permanent ones."""

    UNKNOWN = "unknown"
    AUTHENTICATION = "authentication"
    AUTHORIZATION = "authorization"
    INVALID_REQUEST = "invalid_request"
    RATE_LIMIT = "rate_limit"
    QUOTA = "quota"
    CONNECTIVITY = "connectivity"
    SERVER = "server"
    APPLICATION = "application"


@dataclass(eq=False)
class ErrorFrame(SystemFrame):
    """An error, pushed upstream so the task (and the client, through RTVI) learn about it.

    ``fatal`` errors end the session; others are reported and the pipeline keeps going.
    """

    error: str
    fatal: bool = False
    processor: Any = None
    exception: BaseException | None = None
    category: ErrorCategory = ErrorCategory.UNKNOWN


@dataclass(eq=False)
class FatalErrorFrame(ErrorFrame):
    """An error after which the session cannot go on."""

    fatal: bool = True


# -- requests to the task, pushed upstream; the task turns them into the real frame -------------


@dataclass(eq=False)
class EndTaskFrame(ControlFrame, UninterruptibleFrame):
    """Ask the pipeline task to end gracefully (it queues an :class:`EndFrame`)."""

    reason: str | None = None


@dataclass(eq=False)
class StopTaskFrame(ControlFrame, UninterruptibleFrame):
    """Ask the pipeline task to stop (it queues a :class:`StopFrame`)."""


@dataclass(eq=False)
class CancelTaskFrame(SystemFrame):
    """Ask the pipeline task to cancel now."""

    reason: str | None = None


@dataclass(eq=False)
class InterruptionTaskFrame(SystemFrame):
    """Ask the pipeline task to interrupt the bot (it sends an interruption down the pipeline)."""


# The peer's newer names for the same requests.
EndWorkerFrame = EndTaskFrame
StopWorkerFrame = StopTaskFrame
CancelWorkerFrame = CancelTaskFrame
InterruptionWorkerFrame = InterruptionTaskFrame


@dataclass(eq=False)
class HeartbeatFrame(ControlFrame):
    """Liveness probe sent through the pipeline; ``timestamp``: clock time when sent (ns)."""

    timestamp: int


@dataclass(eq=False)
class PipelineFlushFrame(ControlFrame, UninterruptibleFrame):
    """Round trip probe: goes down to the end, comes back up, and sets ``event`` at the top."""

    event: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class MetricsFrame(SystemFrame):
    """Measurements (timings, usage) produced by processors."""

    data: list[MetricsData]


@dataclass(eq=False)
class ClientConnectedFrame(SystemFrame):
    """The transport has a client."""


@dataclass(eq=False)
class BotConnectedFrame(SystemFrame):
    """The bot joined the room (room-based transports)."""


@dataclass(eq=False)
class OutputTransportReadyFrame(ControlFrame):
    """Pushed upstream by an output transport once it can send."""


@dataclass(eq=False)
class InputTransportStartAudioStreamingFrame(ControlFrame):
    """Tells the input transport to start passing the user's audio on (sent on client-ready)."""
