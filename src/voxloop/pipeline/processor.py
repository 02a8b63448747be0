"""FrameProcessor: the unit a pipeline is made of.

A hop from one processor to the next is a plain ``await`` of the next processor, not a queue
round trip: most processors (aggregators, filters, RTVI, observers' taps) do microseconds of work,
and a queue plus a task per processor would cost far more than the work itself. A processor that
does slow I/O (an LLM, a TTS, an output transport) is created with ``queued=True``: its data and
control frames then wait in its own queue and are handled by its own task, so the processors
before it never wait for it.

System frames always travel inline, so they overtake whatever is queued. An interruption that
reaches a queued processor drops its queued interruptible frames and cancels the frame it is
working on (and so everything that frame is doing further down, on the same task), unless that
frame is uninterruptible. Uninterruptible frames stay queued, in order.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from ..frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMTokenUsage,
    MetricsData,
    MetricsFrame,
    StartFrame,
)
from ._async import Mailbox, TaskSet, cancel_and_wait, frame_survives_interruption
from ._events import EventSource
from .clock import Clock, SystemClock
from .metrics import ProcessorMetrics
from .observer import ObserverHub

logger = logging.getLogger("voxloop")

_processor_ids = itertools.count(1)

# The queued processor whose task is running the current coroutine, if any (see _push_shielded).
_process_owner: contextvars.ContextVar[FrameProcessor | None] = contextvars.ContextVar(
    "voxloop_process_owner", default=None
)

# A task that ignores cancellation must not hang an interruption or a shutdown for ever.
_CANCEL_WAIT_SECS = 2.0
# A queued processor yields to the event loop after this many frames in a row, so a burst in one
# session cannot starve the others.
_FRAMES_PER_YIELD = 64


def _survives_interruption(item: tuple[Frame, FrameDirection]) -> bool:
    return frame_survives_interruption(item[0])


class FrameDirection(IntEnum):
    """Downstream: from the client's input towards the bot's output. Upstream: the way back."""

    DOWNSTREAM = 1
    UPSTREAM = 2


DOWNSTREAM = FrameDirection.DOWNSTREAM
UPSTREAM = FrameDirection.UPSTREAM


@dataclass
class FrameProcessorSetup:
    """What the pipeline task gives every processor before the StartFrame."""

    clock: Clock
    observer: ObserverHub | None = None
    audio_in_sample_rate: int = 16000
    audio_out_sample_rate: int = 24000


class FrameProcessor(EventSource):
    """Receives frames, does its work, pushes frames on.

    Override :meth:`process_frame`; the default passes every frame on unchanged. Call
    :meth:`push_frame` for whatever should move on (including the lifecycle frames you receive:
    a processor that swallows the EndFrame stops the pipeline from ending). No ``super()`` call
    is needed: the bookkeeping (start, interruption, cancel) happens before ``process_frame``.

    Args:
        name: used in logs and metrics; defaults to ``ClassName#n``.
        queued: handle data and control frames on this processor's own task (for slow I/O).

    Events: ``on_error(error_frame)``.
    """

    #: True for output transports: what they push downstream has been played to the user, so
    #: observers (the RTVI observer) report text from there and never ahead of its audio.
    plays_output: ClassVar[bool] = False

    def __init__(self, *, name: str | None = None, queued: bool = False) -> None:
        super().__init__()
        self.id = next(_processor_ids)
        self.name = name or f"{type(self).__name__}#{self.id}"
        self._prev: FrameProcessor | None = None
        self._next: FrameProcessor | None = None
        self._clock: Clock = SystemClock()
        self._observer: ObserverHub | None = None
        self._audio_in_sample_rate = 16000
        self._audio_out_sample_rate = 24000
        # Until the StartFrame arrives frames wait in _early; after a CancelFrame they are dropped.
        self._started = False
        self._cancelled = False
        self._early: list[tuple[Frame, FrameDirection]] = []
        self._metrics = ProcessorMetrics(self.name)
        # Queued mode only.
        self._queued = queued
        self._inbox: Mailbox[tuple[Frame, FrameDirection]] = Mailbox(_survives_interruption)
        self._process_task: asyncio.Task[None] | None = None
        self._current: Frame | None = None
        self._shielded = TaskSet(self)  # uninterruptible pushes that must finish (see _push_shielded)
        self._stray = TaskSet(self)  # process tasks that did not stop when cancelled
        self._register_event_handler("on_error")

    def __repr__(self) -> str:
        return self.name

    # -- wiring ------------------------------------------------------------------------------

    @property
    def queued(self) -> bool:
        """Whether data and control frames are handled on this processor's own task."""
        return self._queued

    @property
    def next(self) -> FrameProcessor | None:
        """The processor downstream frames go to."""
        return self._next

    @property
    def previous(self) -> FrameProcessor | None:
        """The processor upstream frames go to."""
        return self._prev

    @property
    def processors(self) -> Sequence[FrameProcessor]:
        """Child processors (none for a leaf; pipelines override)."""
        return ()

    def link(self, other: FrameProcessor) -> None:
        """Send downstream frames to ``other``, and ``other``'s upstream frames here."""
        first = other.entry_processor()
        if self._next is not None or first._prev is not None:
            raise ValueError(f"{self} or {other} is already linked into a pipeline")
        self._next = first
        first._prev = self

    def entry_processor(self) -> FrameProcessor:
        """The processor that receives frames sent to this one from upstream."""
        return self

    def exit_processor(self) -> FrameProcessor:
        """The processor whose downstream frames leave this one."""
        return self

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def audio_in_sample_rate(self) -> int:
        return self._audio_in_sample_rate

    @property
    def audio_out_sample_rate(self) -> int:
        return self._audio_out_sample_rate

    # -- life cycle --------------------------------------------------------------------------

    async def setup(self, setup: FrameProcessorSetup) -> None:
        """Called by the pipeline task before the StartFrame (override to open resources)."""
        self._clock = setup.clock
        self._observer = setup.observer
        self._audio_in_sample_rate = setup.audio_in_sample_rate
        self._audio_out_sample_rate = setup.audio_out_sample_rate

    async def cleanup(self) -> None:
        """Called by the pipeline task at the end: every task this processor started is finished."""
        tasks = [t for t in (self._process_task, *self._shielded, *self._stray) if t is not None]
        self._process_task = None
        await cancel_and_wait(tasks, timeout=_CANCEL_WAIT_SECS, owner=self)
        await self._finish_event_handlers()

    # -- receiving ---------------------------------------------------------------------------

    async def queue_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        """Hand ``frame`` to this processor (what the previous processor's push does)."""
        if frame.system or not self._started:
            await self._receive_special(frame, direction)
        elif self._queued:
            self._inbox.put((frame, direction))
        else:
            try:
                await self.process_frame(frame, direction)
            except Exception as exc:
                await self._report_exception(exc, frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Handle one frame. The default passes it on unchanged."""
        await self.push_frame(frame, direction)

    async def _receive_special(self, frame: Frame, direction: FrameDirection) -> None:
        """System frames, and anything that arrives before the start or after a cancel."""
        if self._cancelled:
            return
        if isinstance(frame, StartFrame):
            await self._start(frame, direction)
            return
        if isinstance(frame, CancelFrame) and not self._started:
            self._cancelled = True  # cancelled before it ever started: pass it on, drop the rest
            self._early.clear()
        elif not self._started:
            self._early.append((frame, direction))
            return
        if isinstance(frame, InterruptionFrame):
            await self._interrupt_queued_work()
            await self.stop_all_metrics()
        elif isinstance(frame, CancelFrame):
            self._cancelled = True
            await self._stop_process_task()
        try:
            await self.process_frame(frame, direction)
        except Exception as exc:
            await self._report_exception(exc, frame)

    async def _start(self, frame: StartFrame, direction: FrameDirection) -> None:
        self._started = True
        metrics = self._metrics
        metrics.timing_enabled = frame.enable_metrics and self.can_generate_metrics()
        metrics.usage_enabled = frame.enable_usage_metrics and self.can_generate_metrics()
        metrics.report_only_initial_ttfb = frame.report_only_initial_ttfb
        if self._queued and self._process_task is None:
            self._process_task = self._create_process_task()
        try:
            await self.process_frame(frame, direction)
        except Exception as exc:
            await self._report_exception(exc, frame)
        early, self._early = self._early, []
        for early_frame, early_direction in early:
            await self.queue_frame(early_frame, early_direction)

    # -- the queued mode's task ------------------------------------------------------------

    def _create_process_task(self) -> asyncio.Task[None]:
        return asyncio.create_task(self._process_queued_frames(), name=f"{self.name}::process")

    async def _process_queued_frames(self) -> None:
        _process_owner.set(self)
        inbox, shielded = self._inbox, self._shielded
        in_a_row = 0
        while True:
            if shielded:  # an uninterruptible push from a cancelled run must finish first
                await shielded.wait()
            if not inbox:
                in_a_row = 0
                await inbox.wait_for_item()
                continue
            frame, direction = inbox.pop()
            self._current = frame
            try:
                await self.process_frame(frame, direction)
            except Exception as exc:
                await self._report_exception(exc, frame)
            finally:
                self._current = None
            if isinstance(frame, EndFrame):
                return
            in_a_row += 1
            if in_a_row >= _FRAMES_PER_YIELD:
                in_a_row = 0
                await asyncio.sleep(0)

    async def _interrupt_queued_work(self) -> None:
        """Drop queued interruptible frames and cancel the one in flight, unless it must survive."""
        if not self._queued:
            return
        self._inbox.drop_interrupted()
        task, current = self._process_task, self._current
        if task is None or task.done() or current is None or current.uninterruptible:
            return
        if task is asyncio.current_task():
            return  # interrupted by our own work (e.g. broadcast_interruption): let it go on
        task.cancel()
        await self._wait_cancelled(task)
        if self._process_task is task and not self._cancelled:
            self._process_task = self._create_process_task()

    async def _stop_process_task(self) -> None:
        task, self._process_task = self._process_task, None
        if task is None or task.done() or task is asyncio.current_task():
            return
        task.cancel()
        await self._wait_cancelled(task)

    async def _wait_cancelled(self, task: asyncio.Task[None]) -> None:
        _done, pending = await asyncio.wait({task}, timeout=_CANCEL_WAIT_SECS)
        if pending:
            logger.warning("%s: %s did not stop when cancelled; leaving it behind", self, task.get_name())
            self._stray.adopt(task)

    # -- sending -----------------------------------------------------------------------------

    async def push_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        """Send ``frame`` to the next processor in ``direction`` (no-op at the end of the line)."""
        destination = self._next if direction is DOWNSTREAM else self._prev
        if destination is None:
            return
        observer = self._observer
        if observer is not None:
            observer.on_push(self, destination, frame, direction)
        if frame.uninterruptible:
            owner = _process_owner.get()
            if owner is not None and owner._must_shield():
                await owner._push_shielded(destination, frame, direction)
                return
        await destination.queue_frame(frame, direction)

    def _must_shield(self) -> bool:
        current = self._current
        return (
            current is not None
            and not current.uninterruptible
            and self._process_task is asyncio.current_task()
        )

    async def _push_shielded(
        self, destination: FrameProcessor, frame: Frame, direction: FrameDirection
    ) -> None:
        """Deliver an uninterruptible frame even if the work pushing it is interrupted."""
        task = self._shielded.spawn(destination.queue_frame(frame, direction), f"{self.name}::shielded-push")
        await asyncio.shield(task)

    async def broadcast_frame(self, frame_type: type[Frame], **kwargs: Any) -> None:
        """Push one new ``frame_type(**kwargs)`` downstream and a twin upstream, linked by id."""
        down, up = frame_type(**kwargs), frame_type(**kwargs)
        down.broadcast_sibling_id, up.broadcast_sibling_id = up.id, down.id
        await self.push_frame(down, DOWNSTREAM)
        await self.push_frame(up, UPSTREAM)

    async def broadcast_interruption(self) -> None:
        """Interrupt the bot from here: drop this processor's queue and tell both directions."""
        await self._interrupt_queued_work()
        await self.stop_all_metrics()
        await self.broadcast_frame(InterruptionFrame)

    # -- errors ------------------------------------------------------------------------------

    async def push_error(
        self, error: str, exception: BaseException | None = None, *, fatal: bool = False
    ) -> None:
        """Report an error upstream (to the task, and to the client through RTVI)."""
        frame = ErrorFrame(error=error, fatal=fatal, processor=self, exception=exception)
        await self._call_event_handler("on_error", frame)
        await self.push_frame(frame, UPSTREAM)

    async def _report_exception(self, exc: Exception, frame: Frame) -> None:
        logger.error("%s failed on %s: %r", self, frame, exc, exc_info=exc)
        await self.push_error(f"{self.name}: {type(exc).__name__}: {exc}", exc)

    # -- metrics -----------------------------------------------------------------------------

    def can_generate_metrics(self) -> bool:
        """Services override this to take part in metrics."""
        return False

    def set_metrics_model(self, model: str | None) -> None:
        """The model name metrics are attributed to."""
        self._metrics.model = model

    def initial_metrics(self) -> list[MetricsData]:
        return self._metrics.initial()

    async def start_ttfb_metrics(self) -> None:
        self._metrics.start_ttfb(self._clock.now_ns())

    async def stop_ttfb_metrics(self) -> None:
        await self._push_metrics(self._metrics.stop_ttfb(self._clock.now_ns()))

    async def start_processing_metrics(self) -> None:
        self._metrics.start_processing(self._clock.now_ns())

    async def stop_processing_metrics(self) -> None:
        await self._push_metrics(self._metrics.stop_processing(self._clock.now_ns()))

    async def start_llm_usage_metrics(self, usage: LLMTokenUsage) -> None:
        await self._push_metrics(self._metrics.llm_usage(usage))

    async def start_tts_usage_metrics(self, text: str) -> None:
        await self._push_metrics(self._metrics.tts_usage(text))

    async def start_stt_usage_metrics(self, audio_seconds: float) -> None:
        await self._push_metrics(self._metrics.stt_usage(audio_seconds))

    async def stop_all_metrics(self) -> None:
        """Stop running timers and report what they measured so far."""
        metrics = self._metrics
        if metrics.timing_enabled:
            data = metrics.stop_all(self._clock.now_ns())
            if data:
                await self.push_frame(MetricsFrame(data=data))

    async def _push_metrics(self, data: MetricsData | None) -> None:
        if data is not None:
            await self.push_frame(MetricsFrame(data=[data]))
