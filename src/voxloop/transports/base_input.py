"""BaseInputTransport: where the client's audio and messages enter the pipeline.

Audio from any client (any usual rate, mono or stereo) is converted to mono at the pipeline's input
rate before anything else sees it. Its declared format is checked first (:mod:`voxloop.audio.input_format`):
a frame outside the bounds is dropped and the client told, once per kind of problem (then at most
every 10 s, with a count: :class:`._throttle.ReportThrottle`), so a flood of bad frames costs
neither memory nor a flood of errors. Client messages go upstream to the RTVIProcessor, which sits
at the top of the pipeline, just before the input transport.
"""

from __future__ import annotations

import logging
from typing import Any

from ..audio import AudioFormatProblem, PCMConverter, check_audio_format
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
            await self._refuse_audio(problem)
            return
        if not audio:
            return
        pcm = self._converter.convert(audio, sample_rate, num_channels)
        if not pcm:
            return
        await self.push_frame(InputAudioRawFrame(audio=pcm, sample_rate=self.sample_rate, num_channels=1))

    async def _refuse_audio(self, problem: AudioFormatProblem) -> None:
        """Tell the client (an ErrorFrame up to RTVI) the first time, then at most every 10 s."""
        dropped = self._audio_reports.due(problem.kind, self.clock.now_ns())
        if dropped is not None:
            also = ReportThrottle.since(dropped, "such frames")
            await self.push_error(f"dropped client audio: {problem.message}{also}")

    async def push_message(self, message: Any) -> None:
        """A client message: up to the RTVIProcessor."""
        if self._running:
            await self.push_frame(InputTransportMessageFrame(message=message), UPSTREAM)
