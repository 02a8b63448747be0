"""The peer's Twilio phone bot (echo or the default offline bot), for ``bench/telephony.py``.

Run with the python of the pipecat virtual environment (``bench/_peer_env.py``):

    bench/.venv-pipecat/bin/python bench/peer/twilio_server.py --bot echo --port P
    bench/.venv-pipecat/bin/python bench/peer/twilio_server.py --bot default --port P --events FILE \\
        --speech-python .venv/bin/python --speech-worker src/voxloop/services/local/_speech_worker.py

Served as the peer's Twilio examples serve a call: ``POST /twilio`` answers TwiML
``<Connect><Stream url="ws://HOST/ws">``; ``WS /ws`` reads Twilio's ``connected`` and ``start`` with the
peer's ``parse_telephony_websocket`` and runs the call on its FastAPI WebSocket transport with its
``TwilioFrameSerializer`` (8 kHz mu-law on the wire; ``auto_hang_up`` off: the emulated caller hangs
up, and its REST API is not reachable over HTTP). One ``WorkerRunner`` per call. The pipeline runs
at 16 kHz in and 8 kHz out, as voxloop's call pipeline does.

* ``--bot echo``: ``[transport.input(), Echo(), transport.output()]`` (``bench/peer/echo_server.py``'s
  ``Echo``), the counterpart of ``voxloop run --bot echo --transport twilio``.
* ``--bot default``: the peer's version of voxloop's default offline bot, built exactly as
  ``bench/peer/voice_bot.py`` builds it for the browser (Silero VAD, our Whisper tiny.en by path,
  Smart Turn v3.2, the demo agent's answers, espeak-ng in voxloop's speech worker), with the same
  timing probes writing the same events to ``--events``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
import uuid
from typing import Any

from loguru import logger

logger.remove()
logger.add(sys.stderr, level="INFO")

import uvicorn  # noqa: E402
from echo_server import Echo  # noqa: E402
from fastapi import FastAPI, Request, Response, WebSocket  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.runner.utils import parse_telephony_websocket  # noqa: E402
from pipecat.serializers.twilio import TwilioFrameSerializer  # noqa: E402
from pipecat.transports.websocket.fastapi import (  # noqa: E402
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner  # noqa: E402

IN_RATE, OUT_RATE = 16000, 8000

app = FastAPI()
STATE: dict[str, Any] = {}


@app.get("/status")
async def status() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/twilio")
async def twilio_webhook(request: Request) -> Response:
    twiml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        f'<Stream url="ws://{request.url.netloc}/ws"></Stream></Connect></Response>'
    )
    return Response(content=twiml, media_type="application/xml")


def default_pipeline(transport: FastAPIWebsocketTransport, sid: str) -> tuple[Pipeline, list[Any], Any]:
    """voice_bot.py's pipeline and probes on this call's transport: (pipeline, observers, clock)."""
    import voice_bot as vb
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams
    from pipecat.clocks.system_clock import SystemClock
    from pipecat.frames.frames import LLMContextFrame, LLMTextFrame
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (
        LLMContextAggregatorPair,
        LLMUserAggregatorParams,
    )
    from pipecat.processors.audio.vad_processor import VADProcessor

    log = STATE["log"]
    context = LLMContext(messages=[{"role": "system", "content": vb.SYSTEM_PROMPT}])
    aggregators = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams())
    params = VADParams(start_secs=vb.VAD_START_SECS, stop_secs=vb.VAD_STOP_SECS)
    vad = VADProcessor(vad_analyzer=SileroVADAnalyzer(params=params))
    llm = vb.DemoAgentLLM()
    tts = vb.EspeakWorkerTTS(STATE["worker"])
    output = transport.output()
    stages = [transport.input(), vad, vb.create_stt(), aggregators.user(), llm, tts, output]
    pipeline = Pipeline([*stages, aggregators.assistant()])
    clock = SystemClock()
    log.write(sid, "session", time.monotonic_ns())
    vb.probe_process_frame(llm, log, sid, (LLMContextFrame,), "llm")
    vb.probe_process_frame(tts, log, sid, (LLMTextFrame,), "tts")
    vb.probe_tts(tts, log, sid)
    vb.probe_output(output, log, sid)
    return pipeline, [vb.TimingObserver(log, sid, clock)], clock


@app.websocket("/ws")
async def media_stream(websocket: WebSocket) -> None:
    await websocket.accept()
    _, call = await parse_telephony_websocket(websocket)
    serializer = TwilioFrameSerializer(
        stream_sid=call["stream_id"],
        call_sid=call["call_id"],
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
        ),
    )
    observers: list[Any] = []
    extra: dict[str, Any] = {}
    if STATE["bot"] == "echo":
        pipeline = Pipeline([transport.input(), Echo(), transport.output()])
    else:
        pipeline, observers, extra["clock"] = default_pipeline(transport, uuid.uuid4().hex[:12])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=IN_RATE, audio_out_sample_rate=OUT_RATE),
        observers=observers,
        idle_timeout_secs=300,
        **extra,
    )

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport, _websocket):
        await worker.cancel(reason="caller hung up")

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


async def serve(args: argparse.Namespace) -> None:
    STATE["bot"] = args.bot
    out = None
    if args.bot == "default":
        import voice_bot as vb
        from pipecat.audio.vad.silero import SileroVADAnalyzer

        worker = vb.SpeechWorker(args.speech_python, args.speech_worker)
        await worker.start()
        vb.create_stt()  # load the model before the first call
        SileroVADAnalyzer()
        out = open(args.events, "a", buffering=1)  # noqa: ASYNC230, SIM115 (once, before serving)
        STATE.update(log=vb.EventLog(out), worker=worker)
    # TCP_NODELAY on accepted connections, as bench/peer/voice_bot.py and bench/_voice_server.py
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", ws_per_message_deflate=False)
    )
    try:
        await server.serve(sockets=[sock])
    finally:
        if out is not None:
            out.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bot", choices=("echo", "default"), default="echo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", help="the default bot's probe events (JSON lines)")
    parser.add_argument("--speech-python", help="a python that can run the speech worker")
    parser.add_argument("--speech-worker", help="voxloop's _speech_worker.py (imports no voxloop)")
    args = parser.parse_args()
    if args.bot == "default" and not (args.events and args.speech_python and args.speech_worker):
        parser.error("--bot default needs --events, --speech-python and --speech-worker")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
