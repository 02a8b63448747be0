"""BaseInputTransport: where the client's audio and messages enter the pipeline.

Audio from any client (any usual rate, mono or stereo) is converted to mono at the pipeline's input
rate before anything else sees it. Its declared format is checked first (:mod:`voxloop.audio.input_format`):
a frame outside the bounds is dropped and the client told, once per kind of problem (then at most
every 10 s, with a count: :class:`._throttle.ReportThrottle`), so a flood of bad frames costs
neither memory nor a flood of errors. Audio is also paced: a client may run at most
``audio_in_max_ahead_secs`` (2 s) ahead of real time, so one sending faster than it could talk
(straight to an echo bot, whose output plays in real time) cannot make the pipeline queue without
bound; frames beyond that are dropped and reported the same way. Client messages go upstream to
the RTVIProcessor, which sits at the top of the pipeline, just before the input transport.
"""

from __future__ import annotations

import logging
from typing import Any

from ..audio import PCMConverter, check_audio_format
from ..frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputTransportMessageFrame,
    InputTransportStartAudioStreamingFrame,
    StartFrame,
)
from ..pipeline import DOWNSTREAM, UPSTREAM, FrameDirection, FrameProcessor
from ._throttle import ReportThrottle
from .params import TransportParams

logger = logging.getLogger("voxloop.transports")


class BaseInputTransport(FrameProcessor):
    """Concrete transports call :meth:`push_audio` and :meth:`push_message` as data arrives."""

    def __init__(self, params: TransportParams, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params
        self._converter: PCMConverter | None = None
        self._streaming = False
        self._stream_on_start = params.audio_in_stream_on_start
        self._running = False
        self._audio_reports = ReportThrottle()  # per kind of refused audio
        # When the audio taken so far would have finished, had it played in real time from its arrival.
        self._audio_end_ns = 0

    @property
    def sample_rate(self) -> int:
        return self.params.audio_in_sample_rate or self.audio_in_sample_rate

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._converter = PCMConverter(self.sample_rate)
            self._streaming = self._stream_on_start
            self._running = True
            await self.start(frame)
        elif isinstance(frame, InputTransportStartAudioStreamingFrame):
            self._streaming = True
            await self.push_frame(frame, direction)
        elif isinstance(frame, InputAudioRawFrame) and direction is DOWNSTREAM:
            # Audio injected from above (RTVI raw-audio) takes the same path as captured audio.
            await self.push_audio(frame.audio, frame.sample_rate, frame.num_channels)
        elif isinstance(frame, EndFrame | CancelFrame):
            self._running = False
            await self.push_frame(frame, direction)
            await self.stop()
        else:
            await self.push_frame(frame, direction)

    def enable_audio_in_stream_on_start(self, enabled: bool) -> None:
        """Whether audio flows from the start, or only after an ``InputTransportStartAudioStreamingFrame``
        (the RTVIProcessor sends one on client-ready). Only this input: the params may be shared."""
        self._stream_on_start = enabled

    async def start(self, frame: StartFrame) -> None:
        """Begin receiving (override: start reading from the connection)."""

    async def stop(self) -> None:
        """Stop receiving (override: stop reading)."""

    async def push_audio(self, audio: bytes, sample_rate: int, num_channels: int) -> None:
        """Audio from the client: converted, then pushed as an InputAudioRawFrame."""
        if not (self._running and self._streaming and self.params.audio_in_enabled):
            return
        if self._converter is None:
            return
        problem = check_audio_format(len(audio), sample_rate, num_channels)
        if problem is not None:
            await self._refuse_audio(problem.kind, problem.message)
            return
        if not audio:
            return
        if not self._in_real_time(len(audio), sample_rate, num_channels):
            ahead = self.params.audio_in_max_ahead_secs
            await self._refuse_audio(
                "ahead",
                f"audio is arriving faster than real time (more than {ahead:g} s ahead); "
                "send audio as it is recorded",
            )
            return
        pcm = self._converter.convert(audio, sample_rate, num_channels)
        if not pcm:
            return
        await self.push_frame(InputAudioRawFrame(audio=pcm, sample_rate=self.sample_rate, num_channels=1))

    def _in_real_time(self, byte_count: int, sample_rate: int, num_channels: int) -> bool:
        """Whether this frame may be taken: the stream is not already too far ahead of real time.

        Checked before the frame (which may be long: up to the format's limit), so the queue behind
        the input holds at most the allowance plus one frame.
        """
        max_ahead = self.params.audio_in_max_ahead_secs
        if max_ahead is None:
            return True
        now = self.clock.now_ns()
        end = max(self._audio_end_ns, now)  # a client that paused is not credited for the pause
        if end - now > max_ahead * 1e9:
            return False
        self._audio_end_ns = end + byte_count * 1_000_000_000 // (2 * num_channels * sample_rate)
        return True

    async def _refuse_audio(self, kind: str, message: str) -> None:
        """Tell the client (an ErrorFrame up to RTVI) the first time, then at most every 10 s."""
        dropped = self._audio_reports.due(kind, self.clock.now_ns())
        if dropped is not None:
            also = ReportThrottle.since(dropped, "such frames")
            await self.push_error(f"dropped client audio: {message}{also}")

    async def push_message(self, message: Any) -> None:
        """A client message: up to the RTVIProcessor."""
        if self._running:
            await self.push_frame(InputTransportMessageFrame(message=message), UPSTREAM)
