"""The echo bot: plays the user's audio back and answers every client request with its data.

It needs no models, so it proves a transport end to end: the handshake, requests, audio in and
audio out, interruptions and disconnects.
"""

from __future__ import annotations

from ..frames import Frame, InputAudioRawFrame, OutputAudioRawFrame
from ..pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineParams, PipelineTask
from ..rtvi import ClientMessage, RTVIProcessor
from ..transports import Transport
from . import SessionInfo


class Echo(FrameProcessor):
    """Turns what the user says into what the bot says."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate, num_channels=1)
        await self.push_frame(frame, direction)


def create_bot(transport: Transport, session: SessionInfo) -> PipelineTask:
    rtvi = RTVIProcessor()

    @rtvi.event_handler("on_client_message")
    async def answer(processor: RTVIProcessor, message: ClientMessage) -> None:
        await processor.send_server_response(message, {"echo": message.data, "session": session.session_id})

    pipeline = Pipeline([rtvi, transport.input(), Echo(), transport.output()])
    return PipelineTask(
        pipeline, params=PipelineParams(), idle_timeout_secs=300, name=f"echo-{session.session_id}"
    )
