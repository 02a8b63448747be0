"""Speech-to-text service bases.

:class:`STTService` holds what every recogniser shares: the language and other settings (changed at run
time with ``STTUpdateSettingsFrame``), muting (``STTMuteFrame``), and metrics. :class:`SegmentedSTTService`
is the base for recognisers that take a whole utterance at a time (Whisper, OpenAI's transcription API):
the VAD in front of it cuts the user's speech into segments, and it transcribes each one.

How a segment is cut. The VAD says "started" only ``start_secs`` after the speech began, so the service
keeps a short rolling buffer of the audio it has seen (a :class:`~voxloop.audio.PreRoll`); at
``VADUserStartedSpeakingFrame`` the segment starts with the last ``start_secs + pre_roll_secs`` of that
buffer, so the first word is whole (without it small Whisper models garble the onset). The segment ends at
``VADUserStoppedSpeakingFrame``. Speech longer than ``max_segment_secs`` is cut at the quietest moment of the
last two seconds and sent as several parts.

Drafts. A VAD that says when a pause has begun (``VADSpeechEndingFrame``, :attr:`VADParams.ending_secs`)
gets the segment transcribed from there, as a draft nobody sees: if the stop follows with no speech in
between, the draft is the segment's transcript (the audio after it is silence), so the words are in that
much sooner; if the speech resumes (``VADSpeechResumedFrame``), the draft is dropped, and skipped if it
has not started yet. A draft heard as no words is not trusted: the stop transcribes the whole segment (the
end of the pause can make the difference: Whisper tiny heard an espeak-ng "Turn off the lights" cut 0.13 s
into its pause as nothing, once, in the end-to-end test).

How it is transcribed. Every frame is passed on at once: transcription never delays audio or VAD frames.
Segments go to a queue served by one worker task per service instance, so they are transcribed in order,
one at a time, and the work itself (:meth:`SegmentedSTTService.transcribe`) runs off the event loop (a
thread, or network I/O). For each segment the worker pushes ``TranscriptionFrame`` when there are words,
and always then ``TranscriptionFinishedFrame``, so the user aggregator can close the turn without waiting
for a timeout, even when the segment was noise or the recogniser failed (the error goes upstream with
``push_error`` and the session goes on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..audio import PreRoll, to_mono
from ..frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    STTMuteFrame,
    STTUpdateSettingsFrame,
    TranscriptionFinishedFrame,
    TranscriptionFrame,
    UserAudioRawFrame,
    VADSpeechEndingFrame,
    VADSpeechResumedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from ..pipeline import FrameDirection, FrameProcessor, FrameProcessorSetup

logger = logging.getLogger("voxloop.services.stt")

# The pre-roll buffer is sized for VADs that wait up to this long before saying "started".
_MAX_VAD_START_SECS = 2.0
# A long segment is cut at the quietest 20 ms window within the last few seconds before the limit.
_SPLIT_SEARCH_SECS = 2.0
_SPLIT_WINDOW_SECS = 0.02
# At a graceful end, wait at most this long for the segments still queued.
_END_DRAIN_SECS = 30.0


def iso8601_now() -> str:
    """The current UTC time as ISO-8601 with milliseconds, e.g. ``2026-12-02T05:49:55.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Transcript:
    """What a recogniser made of one segment: the text ("" for none), its language, the raw result."""

    text: str
    language: str | None = None
    result: Any = None


class STTService(FrameProcessor):
    """Base of every speech-to-text service: settings, muting, metrics.

    Args:
        language: the language spoken (ISO-639-1, e.g. ``"en"``), or None to let the recogniser guess.
        user_id: put on the transcriptions (a ``UserAudioRawFrame``'s own user id wins).

    ``STTUpdateSettingsFrame(settings={...})`` changes settings at run time; the base knows ``language``,
    subclasses add theirs in :meth:`_update_settings`.
    """

    def __init__(self, *, language: str | None = "en", user_id: str = "", name: str | None = None) -> None:
        super().__init__(name=name)
        self.language = language
        self.user_id = user_id
        self._muted = False

    def can_generate_metrics(self) -> bool:
        return True

    @property
    def muted(self) -> bool:
        """Whether speech is being ignored (``STTMuteFrame(mute=True)``)."""
        return self._muted

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, STTUpdateSettingsFrame) and frame.service in (None, self):
            self._update_settings(frame.settings)
            if frame.service is self:
                return  # addressed to this service alone: it ends here
        elif isinstance(frame, STTMuteFrame):
            await self._set_muted(frame.mute)
        await self.push_frame(frame, direction)

    def _update_settings(self, settings: Mapping[str, Any]) -> None:
        """Apply run-time settings; subclasses handle their own keys and pass the rest here."""
        for key, value in settings.items():
            if key == "language":
                self.language = value
            else:
                logger.warning("%s: unknown setting %r ignored", self, key)

    async def _set_muted(self, muted: bool) -> None:
        self._muted = muted


@dataclass
class _Draft:
    """A transcription of a segment so far, made at a pause before the VAD's stop."""

    valid: bool = True  # False once the speech resumed: the draft is not the segment's transcript
    transcript: Transcript | None = None  # None: not made (yet), or it failed


@dataclass
class _Segment:
    audio: bytes
    sample_rate: int
    stop_ns: int | None  # pipeline-clock time of the VAD stop (final part only)
    final: bool  # the last part of a VAD segment: TranscriptionFinishedFrame follows
    user_id: str
    draft: _Draft | None = None  # this entry makes that draft (not final, pushes nothing)
    from_draft: _Draft | None = None  # final: its transcript is this draft's, made earlier in the queue


class SegmentedSTTService(STTService):
    """Transcribes whole VAD segments, one at a time and in order, off the event loop.

    Subclasses implement :meth:`transcribe`. Args (besides :class:`STTService`'s):

    - ``pre_roll_secs``: audio kept from before the VAD's decision, on top of its ``start_secs``.
    - ``max_segment_secs``: longer speech is transcribed in parts of at most this length.

    Metrics (with ``enable_metrics``): TTFB is from the VAD stop to the transcript, processing time is the
    recogniser's time per part; usage metrics count the seconds of audio transcribed.
    """

    def __init__(
        self,
        *,
        pre_roll_secs: float = 0.5,
        max_segment_secs: float = 30.0,
        language: str | None = "en",
        user_id: str = "",
        name: str | None = None,
    ) -> None:
        super().__init__(language=language, user_id=user_id, name=name)
        if pre_roll_secs < 0:
            raise ValueError("pre_roll_secs must not be negative")
        if max_segment_secs <= _SPLIT_SEARCH_SECS:
            raise ValueError(f"max_segment_secs must be more than {_SPLIT_SEARCH_SECS} s")
        self.pre_roll_secs = pre_roll_secs
        self.max_segment_secs = max_segment_secs
        self._sample_rate = 0
        self._pre_roll = PreRoll(0.0)
        self._recording: bytearray | None = None  # the open segment's audio, mono int16
        self._segment_user_id = user_id
        self._segments: asyncio.Queue[_Segment] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._parts: list[str] = []  # texts of the current VAD segment's parts (worker side)
        self._draft: _Draft | None = None  # the open segment's draft, while it still stands

    # -- what subclasses implement ------------------------------------------------------------

    async def transcribe(self, audio: bytes, sample_rate: int) -> Transcript:
        """Transcribe one segment of mono int16 PCM. Must not block the event loop."""
        raise NotImplementedError

    # -- life cycle -----------------------------------------------------------------------------

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
        self._worker = asyncio.create_task(self._transcribe_segments(), name=f"{self.name}::stt")

    async def cleanup(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        await super().cleanup()

    @property
    def recording(self) -> bool:
        """Whether a segment is being recorded (between a VAD start and stop)."""
        return self._recording is not None

    # -- frames -----------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            await self.push_frame(frame, direction)  # first: audio is never held back
            self._on_audio(frame)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            await self.push_frame(frame, direction)
            self._on_vad_started(frame.start_secs)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            await self.push_frame(frame, direction)
            self._on_vad_stopped()
        elif isinstance(frame, VADSpeechEndingFrame):
            await self.push_frame(frame, direction)
            self._start_draft()
        elif isinstance(frame, VADSpeechResumedFrame):
            await self.push_frame(frame, direction)
            self._drop_draft()
        elif isinstance(frame, EndFrame):
            if self._recording is not None:
                self._on_vad_stopped()  # the stream ended mid-speech: still transcribe what was said
            await self._wait_segments_done()
            await self.push_frame(frame, direction)
        elif isinstance(frame, CancelFrame):
            self._recording = None
            self._drop_draft()
            await self.push_frame(frame, direction)
        else:
            await super().process_frame(frame, direction)

    async def _set_muted(self, muted: bool) -> None:
        await super()._set_muted(muted)
        if muted:
            self._recording = None  # what was said so far in this segment is dropped
            self._drop_draft()

    def _on_audio(self, frame: InputAudioRawFrame) -> None:
        audio = to_mono(frame.audio, frame.num_channels)
        if frame.sample_rate != self._sample_rate:
            if self._sample_rate and self._recording:
                # The rate changed mid-segment: what was recorded cannot be joined to what follows.
                self._enqueue(bytes(self._recording), final=False)
                self._recording = bytearray()
            self._sample_rate = frame.sample_rate
            self._pre_roll = PreRoll(self.pre_roll_secs + _MAX_VAD_START_SECS, frame.sample_rate)
        if isinstance(frame, UserAudioRawFrame) and frame.user_id:
            self._segment_user_id = frame.user_id
        self._pre_roll.append(audio)
        recording = self._recording
        if recording is None:
            return
        recording += audio
        if len(recording) >= round(self.max_segment_secs * self._sample_rate) * 2:
            self._drop_draft()  # it covers audio that now goes out as a part of its own
            cut = _quietest_cut(recording, self._sample_rate)
            self._enqueue(bytes(recording[:cut]), final=False)
            del recording[:cut]

    def _on_vad_started(self, start_secs: float) -> None:
        if self._muted:
            return
        keep = round((max(0.0, start_secs) + self.pre_roll_secs) * self._sample_rate) * 2
        pre_roll = self._pre_roll.get()
        self._recording = bytearray(pre_roll[max(0, len(pre_roll) - keep) :])
        self._segment_user_id = self.user_id

    def _on_vad_stopped(self) -> None:
        recording, self._recording = self._recording, None
        draft, self._draft = self._draft, None
        # Even with nothing recorded (muted), a finish is queued behind the earlier segments, so whoever
        # waits for "the STT is done with everything up to the VAD stop" hears it, in order.
        self._enqueue(bytes(recording) if recording is not None else b"", final=True, from_draft=draft)

    def _start_draft(self) -> None:
        if not self._recording:  # nothing recorded (or muted)
            return
        self._drop_draft()
        self._draft = _Draft()
        self._enqueue(bytes(self._recording), final=False, draft=self._draft)

    def _drop_draft(self) -> None:
        if self._draft is not None:
            self._draft.valid = False
            self._draft = None

    def _enqueue(
        self, audio: bytes, *, final: bool, draft: _Draft | None = None, from_draft: _Draft | None = None
    ) -> None:
        stop_ns = self.clock.now_ns() if final else None
        self._segments.put_nowait(
            _Segment(audio, self._sample_rate, stop_ns, final, self._segment_user_id, draft, from_draft)
        )

    async def _wait_segments_done(self) -> None:
        if self._worker is None or self._worker.done():
            return
        try:
            async with asyncio.timeout(_END_DRAIN_SECS):
                await self._segments.join()
        except TimeoutError:
            logger.warning("%s: segments still untranscribed at the end of the session", self)

    # -- the worker -------------------------------------------------------------------------------

    async def _transcribe_segments(self) -> None:
        while True:
            segment = await self._segments.get()
            try:
                await self._transcribe_segment(segment)
            finally:
                self._segments.task_done()

    async def _make_draft(self, segment: _Segment, draft: _Draft) -> None:
        if not draft.valid:
            return  # the speech resumed before its turn came
        try:
            draft.transcript = await self.transcribe(segment.audio, segment.sample_rate)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the final transcription runs (and reports) it again
            logger.debug("%s: draft transcription failed: %r", self, exc)

    async def _transcribe_segment(self, segment: _Segment) -> None:
        if segment.draft is not None:
            await self._make_draft(segment, segment.draft)
            return
        text = ""
        if segment.audio:
            if segment.stop_ns is not None:
                self._metrics.start_ttfb(segment.stop_ns)  # TTFB counts from the VAD stop
            await self.start_processing_metrics()
            seconds = len(segment.audio) / 2 / segment.sample_rate
            drafted = segment.from_draft.transcript if segment.from_draft is not None else None
            if drafted is not None and not drafted.text.strip():
                drafted = None  # heard as nothing: the whole segment decides
            try:
                transcript = drafted or await self.transcribe(segment.audio, segment.sample_rate)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.error("%s: transcription failed: %r", self, exc, exc_info=exc)
                self._metrics.cancel_ttfb()
                await self.stop_processing_metrics()
                await self.push_error(f"{self.name}: transcription failed: {type(exc).__name__}: {exc}", exc)
            else:
                text = transcript.text.strip()
                await self.stop_processing_metrics()
                if segment.final:
                    await self.stop_ttfb_metrics()
                await self.start_stt_usage_metrics(seconds)
                if text:
                    await self.push_frame(
                        TranscriptionFrame(
                            text=text,
                            user_id=segment.user_id,
                            timestamp=iso8601_now(),
                            language=transcript.language or self.language,
                            result=transcript.result,
                            finalized=True,
                        )
                    )
        if text:
            self._parts.append(text)
        if segment.final:
            whole, self._parts = " ".join(self._parts), []
            await self.push_frame(TranscriptionFinishedFrame(text=whole))


def _quietest_cut(pcm: bytearray, sample_rate: int) -> int:
    """Byte offset of the quietest short window near the end of ``pcm`` (where to split a long segment)."""
    window = max(1, round(_SPLIT_WINDOW_SECS * sample_rate))
    start = max(0, len(pcm) // 2 - round(_SPLIT_SEARCH_SECS * sample_rate))
    tail = np.frombuffer(pcm, dtype="<i2", offset=start * 2).astype(np.float32)  # only what is searched
    usable = len(tail) - len(tail) % window
    if usable == 0:
        return len(pcm)
    energy = np.square(tail[:usable]).reshape(-1, window).mean(axis=1)
    quietest = len(energy) - 1 - int(np.argmin(energy[::-1]))  # the latest of equally quiet windows
    return (start + quietest * window + window // 2) * 2
