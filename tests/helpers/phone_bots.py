"""A bot the phone-call tests share: it speaks three words on key 1 and is interrupted on key 9."""

from __future__ import annotations

import numpy as np

from voxloop.bots import SessionInfo
from voxloop.frames import Frame, InputDTMFFrame, KeypadEntry, OutputAudioRawFrame, TTSTextFrame
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.rtvi import RTVIProcessor
from voxloop.transports import Transport


class Recorder(FrameProcessor):
    """After the output: what it let through (what the assistant context would store)."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TTSTextFrame):
            self.words.append(frame.text)
        await self.push_frame(frame, direction)


class Speaker(FrameProcessor):
    """Key 1: says "one two three", each word followed by 0.2 s of tone; key 9: interrupts."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if isinstance(frame, InputDTMFFrame) and frame.button is KeypadEntry.ONE:
            tone = (np.sin(np.arange(3200) * 0.3) * 8000).astype("<i2").tobytes()
            for word in ("one", "two", "three"):
                await self.push_frame(TTSTextFrame(text=word, aggregated_by="word"))
                await self.push_frame(OutputAudioRawFrame(audio=tone, sample_rate=16000, num_channels=1))
        elif isinstance(frame, InputDTMFFrame) and frame.button is KeypadEntry.NINE:
            await self.broadcast_interruption()


class SpeakerBot:
    def __init__(self) -> None:
        self.recorder = Recorder()

    def __call__(self, transport: Transport, session: SessionInfo) -> PipelineTask:
        processors = [RTVIProcessor(), transport.input(), Speaker(), transport.output(), self.recorder]
        return PipelineTask(Pipeline(processors))
