"""PipelineTask: runs one pipeline (one session) from StartFrame to End or Cancel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..frames import (
    BotSpeakingFrame,
    CancelFrame,
    CancelTaskFrame,
    EndFrame,
    EndTaskFrame,
    ErrorFrame,
    Frame,
    HeartbeatFrame,
    InterruptionFrame,
    InterruptionTaskFrame,
    MetricsData,
    MetricsFrame,
    StartFrame,
    StopFrame,
    StopTaskFrame,
    UserSpeakingFrame,
)
from ._async import Mailbox, TaskSet
from ._events import EventSource
from .clock import Clock, SystemClock
from .observer import BaseObserver, ObserverHub
from .pipeline import Pipeline, walk
from .processor import DOWNSTREAM, UPSTREAM, FrameDirection, FrameProcessor, FrameProcessorSetup

logger = logging.getLogger("voxloop")

_FRAMES_PER_YIELD = 64
_TERMINAL = (EndFrame, StopFrame, CancelFrame)


@dataclass
class PipelineParams:
    """Settings of one pipeline run; they reach every processor through the StartFrame."""

    audio_in_sample_rate: int = 16000
    audio_out_sample_rate: int = 24000
    enable_metrics: bool = False
    enable_usage_metrics: bool = False
    report_only_initial_ttfb: bool = False
    send_initial_empty_metrics: bool = True
    enable_heartbeats: bool = False
    heartbeats_period_secs: float = 1.0
    heartbeats_monitor_secs: float = 10.0
    start_metadata: dict[str, Any] = field(default_factory=dict)


class _TaskSource(FrameProcessor):
    """Top of the task's pipeline: upstream frames end here and are handled by the task."""

    def __init__(self, task: PipelineTask) -> None:
        super().__init__(name=f"{task.name}::source")
        self._task = task

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is UPSTREAM:
            await self._task._reached_top(frame)
        else:
            await self.push_frame(frame, direction)


class _TaskSink(FrameProcessor):
    """Bottom of the task's pipeline: downstream frames end here and are handled by the task."""

    def __init__(self, task: PipelineTask) -> None:
        super().__init__(name=f"{task.name}::sink")
        self._task = task

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is DOWNSTREAM:
            await self._task._reached_bottom(frame)
        else:
            await self.push_frame(frame, direction)


class PipelineTask(EventSource):
    """Runs a pipeline: sends the StartFrame, feeds queued frames in order, ends cleanly.

    - :meth:`queue_frame` / :meth:`queue_frames`: frames go in strictly in order.
    - :meth:`stop_when_done`: graceful end; everything queued before it is processed first.
    - :meth:`cancel`: immediate end, bounded by ``cancel_timeout_secs`` even while an End drains.
    - Upstream requests from processors: :class:`EndTaskFrame`, :class:`StopTaskFrame`,
      :class:`CancelTaskFrame`, :class:`InterruptionTaskFrame`; a fatal :class:`ErrorFrame` cancels.
    - Idle timeout: no StartFrame and none of ``idle_timeout_frames`` pushed anywhere for
      ``idle_timeout_secs`` fires ``on_idle_timeout`` and (by default) cancels. None disables it.
    - Heartbeats (``params.enable_heartbeats``): a frame sent through the pipeline every period;
      if none arrives for ``heartbeats_monitor_secs``, ``on_heartbeat_timeout`` fires (and again
      each period while it lasts).

    After :meth:`run` returns, every task the pipeline started has finished (End and Cancel).

    Events: ``on_pipeline_started(frame)``, ``on_pipeline_finished(frame)``,
    ``on_pipeline_error(frame)``, ``on_pipeline_timeout(frame)``, ``on_idle_timeout()``,
    ``on_heartbeat_timeout()``, ``on_frame_reached_upstream(frame)``,
    ``on_frame_reached_downstream(frame)`` (the last two for the types set with
    :meth:`set_reached_upstream_filter` / :meth:`set_reached_downstream_filter`).
    """

    def __init__(
        self,
        pipeline: FrameProcessor,
        *,
        params: PipelineParams | None = None,
        observers: Iterable[BaseObserver] = (),
        clock: Clock | None = None,
        idle_timeout_secs: float | None = 300.0,
        idle_timeout_frames: tuple[type[Frame], ...] = (BotSpeakingFrame, UserSpeakingFrame),
        cancel_on_idle_timeout: bool = True,
        cancel_timeout_secs: float = 20.0,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.name = name or f"PipelineTask#{id(self):x}"
        self.params = params or PipelineParams()
        self.pipeline = pipeline
        self._clock = clock or SystemClock()
        self._idle_timeout_secs = idle_timeout_secs
        self._cancel_on_idle_timeout = cancel_on_idle_timeout
        self._cancel_timeout_secs = cancel_timeout_secs
        self._hub = ObserverHub(self._clock, (StartFrame, *idle_timeout_frames))
        for observer in observers:
            self._hub.add(observer)
        self._source = _TaskSource(self)
        self._sink = _TaskSink(self)
        self._root = Pipeline([self._source, pipeline, self._sink], name=f"{self.name}::root")
        self._queue: Mailbox[Frame] = Mailbox()
        self._urgent: Mailbox[Frame] = Mailbox()
        self._tasks = TaskSet(self)
        self._pump_task: asyncio.Task[None] | None = None
        self._ran = False
        self._end_queued = False
        self._started = asyncio.Event()
        self._finished = asyncio.Event()
        self._finish_frame: Frame | None = None
        self._cancel_reason: str | None = None
        self._cancel_requested = False
        self._wake_run = asyncio.Event()
        self._last_heartbeat_ns = 0
        self._reached_up: tuple[type[Frame], ...] = ()
        self._reached_down: tuple[type[Frame], ...] = ()
        for event in (
            "on_pipeline_started",
            "on_pipeline_finished",
            "on_pipeline_error",
            "on_pipeline_timeout",
            "on_idle_timeout",
            "on_heartbeat_timeout",
            "on_frame_reached_upstream",
            "on_frame_reached_downstream",
        ):
            self._register_event_handler(event)

    def __repr__(self) -> str:
        return self.name

    # -- what users call ---------------------------------------------------------------------

    async def queue_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        """Send a frame into the pipeline: downstream from the top, or upstream from the bottom."""
        if isinstance(frame, CancelFrame):
            await self.cancel(frame.reason)
        elif direction is UPSTREAM:
            await self._sink.push_frame(frame, UPSTREAM)
        elif self._end_queued or self._finish_frame is not None:
            logger.warning("%s: %s queued after the end; dropped", self, frame)
        else:
            self._end_queued = isinstance(frame, (EndFrame, StopFrame))
            self._queue.put(frame)

    async def queue_frames(self, frames: Iterable[Frame] | AsyncIterable[Frame]) -> None:
        """Queue several frames, in order."""
        if isinstance(frames, AsyncIterable):
            async for frame in frames:
                await self.queue_frame(frame)
        else:
            for frame in frames:
                await self.queue_frame(frame)

    async def stop_when_done(self, reason: str | None = None) -> None:
        """End gracefully once everything queued so far is processed."""
        await self.queue_frame(EndFrame(reason=reason))

    async def cancel(self, reason: str | None = None) -> None:
        """End now: in-flight work is cancelled, queued frames are dropped."""
        self.request_cancel(reason)

    def request_cancel(self, reason: str | None = None) -> None:
        """Synchronous :meth:`cancel`, for signal handlers and callbacks."""
        if self._cancel_requested or self._finish_frame is not None:
            return
        self._cancel_requested = True
        self._cancel_reason = reason
        self._wake_run.set()

    def has_finished(self) -> bool:
        """Whether :meth:`run` is over (the pipeline ended and was cleaned up)."""
        return self._finished.is_set()

    async def wait_until_started(self) -> None:
        """Return once the StartFrame has gone through the whole pipeline."""
        await self._started.wait()

    async def wait_until_finished(self) -> None:
        """Return once :meth:`run` is over (the pipeline ended and was cleaned up)."""
        await self._finished.wait()

    def add_observer(self, observer: BaseObserver) -> None:
        self._hub.add(observer)

    async def remove_observer(self, observer: BaseObserver) -> None:
        await self._hub.remove(observer)

    @property
    def observers(self) -> list[BaseObserver]:
        return self._hub.observers

    def set_reached_upstream_filter(self, types: tuple[type[Frame], ...]) -> None:
        """Frame types that fire ``on_frame_reached_upstream`` when they reach the top."""
        self._reached_up = types

    def set_reached_downstream_filter(self, types: tuple[type[Frame], ...]) -> None:
        """Frame types that fire ``on_frame_reached_downstream`` when they reach the bottom."""
        self._reached_down = types

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the pipeline ends; returns after everything is cleaned up."""
        if self._ran:
            raise RuntimeError(f"{self} has already run; create a new task")
        self._ran = True
        setup = FrameProcessorSetup(
            clock=self._clock,
            observer=self._hub,
            audio_in_sample_rate=self.params.audio_in_sample_rate,
            audio_out_sample_rate=self.params.audio_out_sample_rate,
        )
        try:
            await self._root.setup(setup)
            self._hub.start()
            self._pump_task = self._own(self._pump_queued_frames(), "pump")
            self._own(self._pump_urgent_frames(), "urgent")
            if self._idle_timeout_secs:
                self._own(self._watch_idleness(self._idle_timeout_secs), "idle")
            while self._finish_frame is None and not self._cancel_requested:
                self._wake_run.clear()
                await self._wake_run.wait()
            if self._finish_frame is None:
                await self._cancel_pipeline(self._cancel_reason)
        finally:
            await self._tear_down()

    def _own(self, coroutine: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        return self._tasks.spawn(coroutine, f"{self.name}::{what}")

    def _start_frame(self) -> StartFrame:
        p = self.params
        frame = StartFrame(
            audio_in_sample_rate=p.audio_in_sample_rate,
            audio_out_sample_rate=p.audio_out_sample_rate,
            enable_metrics=p.enable_metrics,
            enable_usage_metrics=p.enable_usage_metrics,
            report_only_initial_ttfb=p.report_only_initial_ttfb,
        )
        frame.metadata.update(p.start_metadata)
        return frame

    async def _pump_queued_frames(self) -> None:
        """Feeds the pipeline: the StartFrame, then queued frames in order until End or Stop."""
        await self._source.queue_frame(self._start_frame())
        queue = self._queue
        in_a_row = 0
        while True:
            if not queue:
                in_a_row = 0
                await queue.wait_for_item()
                continue
            frame = queue.pop()
            await self._source.queue_frame(frame)
            if isinstance(frame, (EndFrame, StopFrame)):
                return
            in_a_row += 1
            if in_a_row >= _FRAMES_PER_YIELD:
                in_a_row = 0
                await asyncio.sleep(0)

    async def _pump_urgent_frames(self) -> None:
        """Frames the task itself injects out of order (interruptions, heartbeats, metrics)."""
        urgent = self._urgent
        while True:
            await self._source.queue_frame(await urgent.get())

    def _inject(self, frame: Frame) -> None:
        self._urgent.put(frame)

    async def _cancel_pipeline(self, reason: str | None) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            await asyncio.wait({self._pump_task})
        frame = CancelFrame(reason=reason)
        logger.debug("%s: cancelling (%s)", self, reason or "no reason given")
        try:
            async with asyncio.timeout(self._cancel_timeout_secs):
                await self._source.queue_frame(frame)
        except TimeoutError:
            logger.warning("%s: cancel did not get through in %ss", self, self._cancel_timeout_secs)
            await self._call_event_handler("on_pipeline_timeout", frame)
        await self._finish(frame)  # also when a processor swallowed the CancelFrame

    async def _tear_down(self) -> None:
        await self._tasks.cancel_and_wait()
        if not isinstance(self._finish_frame, StopFrame):
            await self._root.cleanup()
        await self._hub.finish()
        await self._finish_event_handlers()
        self._finished.set()

    # -- frames that reach the ends ----------------------------------------------------------

    async def _reached_top(self, frame: Frame) -> None:
        if isinstance(frame, ErrorFrame):
            await self._on_error(frame)
        elif isinstance(frame, (EndTaskFrame, StopTaskFrame, CancelTaskFrame, InterruptionTaskFrame)):
            await self._on_request(frame)
        if self._reached_up and isinstance(frame, self._reached_up):
            await self._call_event_handler("on_frame_reached_upstream", frame)

    async def _reached_bottom(self, frame: Frame) -> None:
        if isinstance(frame, StartFrame):
            await self._on_started(frame)
        elif isinstance(frame, _TERMINAL):
            await self._finish(frame)
        elif isinstance(frame, HeartbeatFrame):
            self._last_heartbeat_ns = self._clock.now_ns()
        elif isinstance(frame, (EndTaskFrame, StopTaskFrame, CancelTaskFrame, InterruptionTaskFrame)):
            await self._on_request(frame)
        if self._reached_down and isinstance(frame, self._reached_down):
            await self._call_event_handler("on_frame_reached_downstream", frame)

    async def _on_started(self, frame: StartFrame) -> None:
        self._started.set()
        self._hub.pipeline_started()
        await self._call_event_handler("on_pipeline_started", frame)
        if self.params.enable_metrics and self.params.send_initial_empty_metrics:
            data: list[MetricsData] = []
            for processor in walk(self.pipeline):
                data.extend(processor.initial_metrics())
            if data:
                self._inject(MetricsFrame(data=data))
        if self.params.enable_heartbeats:
            self._last_heartbeat_ns = self._clock.now_ns()
            self._own(self._send_heartbeats(), "heartbeats")
            self._own(self._watch_heartbeats(), "heartbeat-monitor")

    async def _finish(self, frame: Frame) -> None:
        if self._finish_frame is not None:
            return
        self._finish_frame = frame
        await self._call_event_handler("on_pipeline_finished", frame)
        self._wake_run.set()

    async def _on_error(self, frame: ErrorFrame) -> None:
        logger.warning("%s: error from %s: %s", self, frame.processor, frame.error)
        await self._call_event_handler("on_pipeline_error", frame)
        if frame.fatal:
            self.request_cancel(f"fatal error: {frame.error}")

    async def _on_request(self, frame: Frame) -> None:
        if isinstance(frame, EndTaskFrame):
            await self.queue_frame(EndFrame(reason=frame.reason))
        elif isinstance(frame, StopTaskFrame):
            await self.queue_frame(StopFrame())
        elif isinstance(frame, CancelTaskFrame):
            self.request_cancel(frame.reason)
        elif isinstance(frame, InterruptionTaskFrame):
            self._inject(InterruptionFrame())

    # -- timers ------------------------------------------------------------------------------

    async def _watch_idleness(self, timeout_secs: float) -> None:
        timeout_ns = int(timeout_secs * 1e9)
        hub, clock = self._hub, self._clock
        while True:
            idle_ns = clock.now_ns() - hub.last_activity_ns
            if idle_ns < timeout_ns:
                await clock.sleep((timeout_ns - idle_ns) / 1e9)
                continue
            logger.info("%s: idle for %ss", self, timeout_secs)
            await self._call_event_handler("on_idle_timeout")
            if self._cancel_on_idle_timeout:
                self.request_cancel("idle timeout")
                return
            hub.last_activity_ns = clock.now_ns()

    async def _send_heartbeats(self) -> None:
        while True:
            await self._clock.sleep(self.params.heartbeats_period_secs)
            self._inject(HeartbeatFrame(timestamp=self._clock.now_ns()))

    async def _watch_heartbeats(self) -> None:
        period = self.params.heartbeats_period_secs
        limit_ns = int(self.params.heartbeats_monitor_secs * 1e9)
        while True:
            await self._clock.sleep(period)
            if self._clock.now_ns() - self._last_heartbeat_ns > limit_ns:
                logger.warning(
                    "%s: heartbeat frame not received for more than %s seconds",
                    self,
                    self.params.heartbeats_monitor_secs,
                )
                await self._call_event_handler("on_heartbeat_timeout")
