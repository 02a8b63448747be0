"""A dictation partner that needs no LLM: it reads back what you said, and keeps a running note.

    voxloop run --bot examples/dictation_bot.py

What it shows: a custom processor in place of the LLM (it turns each finished user turn into speech),
the client's ``send-text`` and client messages, and the whole offline speech pipeline. Say "read it
back" to hear the note so far, "clear" to start again; anything else is added to the note.
A client can also ask for the note with ``sendClientRequest("get-note")``.
"""

from __future__ import annotations

from voxloop.bots import SessionInfo
from voxloop.bots.default import preload  # noqa: F401  (the shared models load once, at start-up)
from voxloop.context import LLMContext, LLMContextAggregatorPair
from voxloop.frames import (
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.rtvi import ClientMessage, RTVIProcessor
from voxloop.services.local import EspeakTTSService, WhisperSTTService
from voxloop.transports import Transport
from voxloop.turns import VADProcessor


class Dictation(FrameProcessor):
    """Answers each user turn like an LLM would (response start, text, end), from simple rules."""

    def __init__(self) -> None:
        super().__init__()
        self.note: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        last = frame.context.last_message("user")
        said = str(last["content"]).strip() if last else ""
        command = said.lower().strip(" .!?")
        if command in ("read it back", "read back", "read it"):
            reply = " ".join(self.note) if self.note else "The note is empty."
        elif command in ("clear", "start again"):
            self.note.clear()
            reply = "Cleared."
        else:
            self.note.append(said)
            reply = f"Noted: {said}"
        await self.push_frame(LLMFullResponseStartFrame())
        await self.push_frame(LLMTextFrame(reply))
        await self.push_frame(LLMFullResponseEndFrame())


def create_bot(transport: Transport, session: SessionInfo) -> PipelineTask:
    rtvi = RTVIProcessor()
    dictation = Dictation()

    @rtvi.event_handler("on_client_message")
    async def on_message(processor: RTVIProcessor, message: ClientMessage) -> None:
        if message.type == "get-note":
            await processor.send_server_response(message, {"note": dictation.note})
        else:
            await processor.send_error_response(message, f"unknown request {message.type!r}")

    aggregators = LLMContextAggregatorPair(LLMContext())
    pipeline = Pipeline(
        [
            rtvi,
            transport.input(),
            VADProcessor(),
            WhisperSTTService(),
            aggregators.user(),
            dictation,
            EspeakTTSService(),
            transport.output(),
            aggregators.assistant(),
        ]
    )
    return PipelineTask(pipeline, idle_timeout_secs=600)
