"""The turn path from an LLM's first token to the first audio written to the client, timed in parts.

A real pipeline: an LLM service (the offline demo agent, or a paced LLM-like stand-in) -> the TTS service
(espeak-ng or piper, through its worker) -> an output transport (pacing, resampling to 24 kHz). Probes
between them take the time of:

- ``llm``: the first token, to the token that completed the first chunk (the LLM writing it, and the
  word after it, whose leading space shows that the chunk's last mark ends it);
- ``to_engine``: that token, to the TTS asking its engine for the chunk (the queue hop into the TTS,
  the aggregator);
- ``engine``: that request, to the first audio frame out of the TTS (the worker round trip and the
  engine's synthesis of the chunk's first piece);
- ``output``: that frame, to its first chunk written by the output transport;
- ``first_audio``: the first token to the first chunk written (the sum).

Modes: ``before`` speaks whole sentences and makes each in one piece (``first_clause_words=0``, piper's
``split_clauses=False``), ``after`` uses the defaults (the first chunk ends at its first clause, piper
streams clause by clause).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from voxloop.context import LLMContext
from voxloop.frames import Frame, InterruptionFrame, LLMContextFrame, LLMTextFrame, TTSAudioRawFrame
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline
from voxloop.services import LLMOutput, LLMService, TTSOutput, TTSService
from voxloop.services.local import DemoAgentLLM, EspeakTTSService, PiperTTSService
from voxloop.testing import PipelineHarness
from voxloop.transports import BaseOutputTransport
from voxloop.transports.params import TransportParams

# An LLM-like reply: a long first sentence with clauses, at 25 ms per word (about 50 tokens/s).
LLM_REPLY = (
    "Sure, the quickest way there is to take the number twelve bus to the central station, then walk "
    "north along the river for about ten minutes, and you will see the museum on your left. It opens "
    "at nine."
)
WORD_SECS = 0.025
REPLIES = ("demo", "llm")


class PacedLLM(LLMService):
    """Streams a fixed reply word by word at an LLM's pace."""

    def __init__(self, reply: str, word_secs: float) -> None:
        super().__init__(model="paced")
        self._reply = reply
        self._word_secs = word_secs

    async def generate(self, context: Any) -> AsyncGenerator[LLMOutput, None]:
        # Deltas carry their leading space, as chat LLMs stream them: a comma or period is only known to
        # end a clause when the next word arrives.
        for index, word in enumerate(self._reply.split(" ")):
            yield word if index == 0 else " " + word
            await asyncio.sleep(self._word_secs)


class _Times(FrameProcessor):
    """Takes the time each frame of a type passes downstream."""

    def __init__(self, frame_type: type[Frame], name: str) -> None:
        super().__init__(name=name)
        self._type = frame_type
        self.at: list[float] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, self._type) and direction is FrameDirection.DOWNSTREAM:
            self.at.append(time.perf_counter())
        await self.push_frame(frame, direction)


class _TimedRequests(TTSService):
    """Takes the time the TTS asks its engine for each chunk (mixed into an engine's service)."""

    requested: list[float]

    async def run_tts(self, text: str) -> AsyncGenerator[TTSOutput, None]:
        self.requested.append(time.perf_counter())
        async for item in super().run_tts(text):
            yield item


class _TimedEspeak(_TimedRequests, EspeakTTSService):
    pass


class _TimedPiper(_TimedRequests, PiperTTSService):
    pass


class _TimedOutput(BaseOutputTransport):
    """An output transport whose client is a clock: the time of the first audio written."""

    def __init__(self) -> None:
        super().__init__(TransportParams())
        self.first_write: float | None = None
        self.written = asyncio.Event()

    async def write_audio(self, audio: bytes, sample_rate: int) -> None:
        if self.first_write is None:
            self.first_write = time.perf_counter()
            self.written.set()

    async def send_message(self, message: Any) -> None:
        pass


def _services(engine: str, reply: str, mode: str) -> tuple[LLMService, _TimedEspeak | _TimedPiper]:
    clause = 3 if mode == "after" else 0
    tts: _TimedEspeak | _TimedPiper
    if engine == "piper":
        tts = _TimedPiper(first_clause_words=clause, split_clauses=mode == "after")
    else:
        tts = _TimedEspeak(first_clause_words=clause)
    tts.requested = []
    llm: LLMService = DemoAgentLLM() if reply == "demo" else PacedLLM(LLM_REPLY, WORD_SECS)
    return llm, tts


async def first_audio_of_reply(engine: str, reply: str, mode: str) -> dict[str, float]:
    """One reply, timed in parts (milliseconds); the reply is interrupted once its first audio is out."""
    llm, tts = _services(engine, reply, mode)
    tokens = _Times(LLMTextFrame, "tokens")
    audio = _Times(TTSAudioRawFrame, "tts-audio")
    output = _TimedOutput()
    # The demo agent's first reply is its greeting, to a user who has said nothing yet.
    context = LLMContext([{"role": "user", "content": ""}])
    async with PipelineHarness(Pipeline([llm, tokens, tts, audio, output])) as harness:
        await harness.push(LLMContextFrame(context))
        await asyncio.wait_for(output.written.wait(), 30)
        await harness.push(InterruptionFrame())  # barge-in: the rest is never made or played
        await harness.down_recorder.wait_for(InterruptionFrame)
    # The worker may still be making a piece of what was cancelled: let it finish before the next round.
    async with await tts.worker.synthesize("Ok.") as drain:
        async for _event in drain:
            pass
    assert tokens.at and audio.at and output.first_write is not None and tts.requested
    first_token, request = tokens.at[0], tts.requested[0]
    completing = max(at for at in tokens.at if at <= request)
    return {
        "first_audio": (output.first_write - first_token) * 1000,
        "llm": (completing - first_token) * 1000,
        "to_engine": (request - completing) * 1000,
        "engine": (audio.at[0] - request) * 1000,
        "output": (output.first_write - audio.at[0]) * 1000,
    }
