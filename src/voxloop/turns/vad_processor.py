"""VADProcessor: voice activity detection in the pipeline, between the input transport and the STT.

It forwards every frame (audio first, never delayed), feeds the user's audio to a
:class:`voxloop.audio.SileroVAD`, and pushes downstream ``VADUserStartedSpeakingFrame`` /
``VADUserStoppedSpeakingFrame`` when the VAD decides, plus a ``UserSpeakingFrame`` every
``speaking_interval_secs`` of audio while the user speaks. Audio at another rate or with several
channels is converted to 16 kHz mono for the VAD only (the audio passed on is untouched).

Silero costs about 0.2 ms per 32 ms frame, so by default it runs inline, on the task that delivers the
audio. ``run_in_thread=True`` moves the analysis to a worker thread (one task, chunks in order): worth
it with many sessions in one process. The audio still goes on at once; the VAD frames then follow a
little later.

Settings change at run time with a ``VADParamsUpdateFrame`` (either direction) or :meth:`update_params`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from ..audio import PCMConverter, SileroVAD, VADEvent
from ..frames import (
    CancelFrame,
    Frame,
    InputAudioRawFrame,
    UserSpeakingFrame,
    VADParamsUpdateFrame,
    VADSpeechEndingFrame,
    VADSpeechResumedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from ..pipeline import DOWNSTREAM, FrameDirection, FrameProcessor, Mailbox
from .params import VADParams

logger = logging.getLogger("voxloop.turns")

_VAD_RATE = 16000


def apply_vad_params(vad: SileroVAD, params: VADParams) -> None:
    """Set ``params`` on a running :class:`SileroVAD` (its LSTM state and current decision are kept).

    SileroVAD takes its timing only in its constructor, so the frame counts it derives are set here
    the same way it computes them (at least ``start_secs`` / ``stop_secs``, in whole 32 ms frames).
    """
    vad.confidence_threshold = params.confidence
    vad.min_volume = params.min_volume
    vad._start_frames = vad.whole_frames(params.start_secs)
    vad._stop_frames = vad.whole_frames(params.stop_secs)
    vad.set_ending_secs(params.ending_secs)


class VADProcessor(FrameProcessor):
    """Runs a VAD on the user's audio and tells the pipeline when the user starts and stops speaking.

    Args:
        vad: the analyzer (default: a new :class:`SileroVAD`; the model session is shared per process).
        params: VAD settings; they are applied to ``vad`` (default :class:`VADParams`: stop after 0.3 s).
        run_in_thread: analyse on a worker thread instead of inline.
        speaking_interval_secs: how often ``UserSpeakingFrame`` is pushed while the user speaks.
    """

    def __init__(
        self,
        vad: SileroVAD | None = None,
        *,
        params: VADParams | None = None,
        run_in_thread: bool = False,
        speaking_interval_secs: float = 0.1,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.params = params or VADParams()
        self._vad = vad if vad is not None else SileroVAD()
        apply_vad_params(self._vad, self.params)
        self._run_in_thread = run_in_thread
        self._speaking_interval = speaking_interval_secs
        self._last_tick_secs = 0.0
        self._converter: PCMConverter | None = None
        # Thread mode: chunks waiting for the worker, in order.
        self._pending: Mailbox[bytes] = Mailbox()
        self._worker: asyncio.Task[None] | None = None

    @property
    def vad(self) -> SileroVAD:
        return self._vad

    @property
    def speaking(self) -> bool:
        return self._vad.speaking

    def update_params(self, **changes: float) -> VADParams:
        """Change some settings (``confidence``, ``start_secs``, ``stop_secs``, ``min_volume``) now."""
        self.params = dataclasses.replace(self.params, **changes)
        apply_vad_params(self._vad, self.params)
        return self.params

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            await self.push_frame(frame, direction)
            if direction is DOWNSTREAM:
                await self._audio(frame)
            return
        if isinstance(frame, VADParamsUpdateFrame):
            changes = {
                key: value
                for key in ("confidence", "start_secs", "stop_secs", "min_volume")
                if (value := getattr(frame, key)) is not None
            }
            try:
                self.update_params(**changes)
            except ValueError as exc:
                await self.push_error(f"{self.name}: invalid VAD params {changes}: {exc}", exc)
        if isinstance(frame, CancelFrame):
            await self._stop_worker()
        await self.push_frame(frame, direction)

    async def _audio(self, frame: InputAudioRawFrame) -> None:
        pcm = frame.audio
        if frame.sample_rate != _VAD_RATE or frame.num_channels != 1:
            if self._converter is None:
                self._converter = PCMConverter(_VAD_RATE)
            pcm = self._converter.convert(pcm, frame.sample_rate, frame.num_channels)
        if not self._run_in_thread:
            await self._emit(self._vad.analyze(pcm))
            return
        if self._worker is None:
            self._worker = asyncio.create_task(self._analyse_in_thread(), name=f"{self.name}::vad")
        self._pending.put(pcm)

    async def _analyse_in_thread(self) -> None:
        pending = self._pending
        while True:
            await pending.wait_for_item()
            chunks = b"".join(pending.take_all())
            try:
                events = await asyncio.to_thread(self._vad.analyze, chunks)
            except Exception as exc:
                logger.exception("%s: VAD analysis failed", self)
                await self.push_error(f"{self.name}: VAD analysis failed: {exc}", exc)
                continue
            await self._emit(events)

    async def _emit(self, events: list[VADEvent]) -> None:
        vad = self._vad
        for event in events:
            # The delay actually used (whole frames) from the speech onset / end to the decision.
            delay = event.at_secs - event.edge_secs
            frame: Frame
            if event.kind == "started":
                self._last_tick_secs = event.at_secs
                frame = VADUserStartedSpeakingFrame(start_secs=delay, timestamp=time.time())
            elif event.kind == "stopped":
                frame = VADUserStoppedSpeakingFrame(stop_secs=delay, timestamp=time.time())
            elif event.kind == "ending":
                until_stop = max(0.0, vad.stop_delay_secs - delay)
                frame = VADSpeechEndingFrame(quiet_secs=delay, until_stop_secs=until_stop)
            else:
                frame = VADSpeechResumedFrame()
            await self.push_frame(frame, DOWNSTREAM)
        # Ticks only on frames that are speech: each one proves the user was still talking at that moment,
        # which lets the turn controller confirm a barge-in without waiting out the VAD's stop delay.
        if (
            vad.speaking
            and vad.last_frame_is_speech
            and vad.stream_secs - self._last_tick_secs >= self._speaking_interval
        ):
            self._last_tick_secs = vad.stream_secs
            await self.push_frame(UserSpeakingFrame(), DOWNSTREAM)

    async def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def cleanup(self) -> None:
        await self._stop_worker()
        await super().cleanup()
