"""The peer's echo bot behind a WebSocket server, for ``bench/sessions.py``.

Run with the python of the pipecat virtual environment (``bench/_peer_env.py``):

    bench/.venv-pipecat/bin/python bench/peer/echo_server.py --port 7861

It is the peer-side counterpart of ``voxloop run --bot echo``: ``POST /start`` answers
``{"wsUrl": ...}`` and every connection to ``WS /ws`` gets its own pipeline
``[transport.input(), Echo(), transport.output()]`` on the peer's FastAPI WebSocket transport
with its protobuf serializer (the published web client's wire), 16 kHz in and 24 kHz out. RTVI
is left as the peer sets it up by default (processor and observer added by the worker, bot-ready
sent on client-ready), so the same RTVI client drives both servers. Each session runs in its own
``WorkerRunner``, as the peer's development runner does.
"""

from __future__ import annotations

import argparse
import sys

# Route loguru before importing pipecat (it logs on import). INFO, like voxloop's CLI, so neither
# server pays for debug logging; the benchmark sends stderr to a file.
from loguru import logger

logger.remove()
logger.add(sys.stderr, level="INFO")

import uvicorn  # noqa: E402
from fastapi import FastAPI, Request, WebSocket  # noqa: E402
from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.serializers.protobuf import ProtobufFrameSerializer  # noqa: E402
from pipecat.transports.websocket.fastapi import (  # noqa: E402
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner  # noqa: E402

app = FastAPI()


class Echo(FrameProcessor):
    """Turns what the user says into what the bot says; everything else passes through."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(
                audio=frame.audio, sample_rate=frame.sample_rate, num_channels=frame.num_channels
            )
        await self.push_frame(frame, direction)


@app.get("/status")
async def status():
    return {"status": "ready"}


@app.post("/start")
async def start(request: Request):
    return {"wsUrl": f"ws://{request.url.netloc}/ws"}


@app.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket):
    await websocket.accept()
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
    worker = PipelineWorker(
        Pipeline([transport.input(), Echo(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=24000),
    )

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport, _websocket):
        await worker.cancel(reason="client disconnected")

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7861)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
