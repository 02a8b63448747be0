"""The default bot served with timing probes, for ``bench/voice.py`` (run as its own process).

    python bench/_voice_server.py --port P --events FILE [--twilio]

Serves ``voxloop.bots.default`` exactly as ``voxloop run`` does (same app, same pipeline), and writes one
JSON line per event of interest to FILE, each stamped with ``time.monotonic_ns()``. That is the pipeline
clock (``SystemClock``) and ``CLOCK_MONOTONIC``, which every process on the machine shares, so the load
generator's own stamps compare directly. The probes are bench-only and wrap instances, never the package:

* a pipeline observer (``FramePushed``, stamped by the task's observer hub at the push) for the frames
  that mark the turn: VAD start/stop, transcription finished, user turn start/stop, LLM context, LLM text,
  TTS audio, interruption, bot started/stopped speaking;
* the LLM's and the TTS's ``process_frame`` entry (when a queued processor starts on a frame), the TTS
  engine's ``run_tts`` (sentence handed to the engine, first audio back), and the output transport's
  ``write_audio`` / ``send_interruption`` (the moment bytes go to the socket).

``--twilio`` also serves phone calls (``POST /twilio`` and its media socket, webhook signatures not
checked), as ``voxloop run --transport twilio --no-verify-webhooks`` does, for ``bench/telephony.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncGenerator
from typing import Any, TextIO

import uvicorn

from voxloop.bots import SessionInfo
from voxloop.bots import default as default_bot
from voxloop.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMSpeculationFrame,
    LLMTextFrame,
    TranscriptionFinishedFrame,
    TTSAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from voxloop.pipeline import BaseObserver, FramePushed, PipelineTask
from voxloop.server import ServerConfig, create_app

WATCHED = (
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
    TranscriptionFinishedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    LLMContextFrame,
    LLMSpeculationFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    InterruptionFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
)


class EventLog:
    """Events of every session, one JSON line each (a few dozen per turn: cheap next to the audio)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, sid: str, event: str, ts: int, **extra: Any) -> None:
        self._out.write(json.dumps({"sid": sid, "ev": event, "ts": ts, **extra}) + "\n")
        self._out.flush()


class TimingObserver(BaseObserver):
    """First hop of each watched frame: who pushed it and when (the hub's stamp, at the push)."""

    def __init__(self, log: EventLog, sid: str) -> None:
        self._log, self._sid = log, sid
        self._seen: set[int] = set()

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if not isinstance(frame, WATCHED) or frame.id in self._seen:
            return
        if isinstance(frame, TTSAudioRawFrame | LLMTextFrame) and len(self._seen) > 4096:
            self._seen.clear()  # bounded: only first hops matter, and ids never repeat
        self._seen.add(frame.id)
        extra = {"secs": frame.stop_secs} if isinstance(frame, VADUserStoppedSpeakingFrame) else {}
        name = type(frame).__name__
        if isinstance(frame, LLMSpeculationFrame):
            name = f"{name}:{frame.action}"  # start / confirm / drop
        self._log.write(self._sid, name, data.timestamp, src=type(data.source).__name__, **extra)


def _probe_process_frame(processor: Any, log: EventLog, sid: str, kinds: tuple[type, ...], tag: str) -> None:
    inner = processor.process_frame

    async def process_frame(frame: Any, direction: Any) -> None:
        if isinstance(frame, kinds):
            log.write(sid, f"{tag}:{type(frame).__name__}", time.monotonic_ns())
        await inner(frame, direction)

    processor.process_frame = process_frame


def _probe_tts(tts: Any, log: EventLog, sid: str) -> None:
    inner = tts.run_tts

    async def run_tts(text: str) -> AsyncGenerator[Any, None]:
        log.write(sid, "tts:run", time.monotonic_ns(), chars=len(text))
        first = True
        async for item in inner(text):
            if first and isinstance(item, bytes | bytearray):
                log.write(sid, "tts:first_audio", time.monotonic_ns())
                first = False
            yield item

    tts.run_tts = run_tts


def _probe_output(output: Any, log: EventLog, sid: str) -> None:
    write_audio, send_interruption = output.write_audio, output.send_interruption

    async def probed_write(audio: bytes, sample_rate: int) -> None:
        await write_audio(audio, sample_rate)
        log.write(sid, "out:write", time.monotonic_ns(), n=len(audio))

    async def probed_interruption() -> None:
        log.write(sid, "out:interruption", time.monotonic_ns())
        await send_interruption()

    output.write_audio = probed_write
    output.send_interruption = probed_interruption


def instrumented_bot(log: EventLog) -> Any:
    from voxloop.services import LLMService, TTSService
    from voxloop.transports.base_output import BaseOutputTransport

    def create(transport: Any, session: SessionInfo) -> PipelineTask:
        task = default_bot.create_bot(transport, session)
        sid = session.session_id
        log.write(sid, "session", time.monotonic_ns())
        for processor in task.pipeline.processors:
            if isinstance(processor, LLMService):
                _probe_process_frame(processor, log, sid, (LLMContextFrame,), "llm")
            elif isinstance(processor, TTSService):
                _probe_process_frame(processor, log, sid, (LLMTextFrame,), "tts")
                _probe_tts(processor, log, sid)
            elif isinstance(processor, BaseOutputTransport):
                _probe_output(processor, log, sid)
        task.add_observer(TimingObserver(log, sid))
        return task

    return create


async def serve(port: int, events: str, twilio: bool = False) -> None:
    from voxloop.transports.telephony import create_provider

    await default_bot.preload()
    phone = (create_provider("twilio", verify=False),) if twilio else ()
    with open(events, "a", buffering=1) as out:  # noqa: ASYNC230 (once, before serving)
        config = ServerConfig(
            bot=instrumented_bot(EventLog(out)), max_sessions=100, telephony=phone, verify_webhooks=not twilio
        )
        app = create_app(config)
        # proto=IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted connections only
        # when the socket says it is TCP. Without it Nagle held each burst of bot audio until the
        # client's next mic frame carried the ACK: 0-16 ms (median ~11 ms) on the socket hop.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", ws_per_message_deflate=False)
        )
        await server.serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--twilio", action="store_true", help="serve Twilio calls too (webhooks unchecked)")
    args = parser.parse_args()
    os.environ.pop("OPENAI_API_KEY", None)  # the offline bot: the demo agent, whatever the environment
    os.environ.pop("OPENAI_BASE_URL", None)
    asyncio.run(serve(args.port, args.events, args.twilio))


if __name__ == "__main__":
    main()
