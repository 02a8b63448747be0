"""``POST /v1/audio/speech`` for :class:`OpenAITestServer`.

The JSON body is checked against the SDK's own ``SpeechCreateParams`` (unknown fields, wrong types and
values are problems), plus the documented limits (``input`` 1 to 4096 characters, ``speed`` 0.25 to 4.0).
An invalid request is recorded with its problem and answered 400 in OpenAI's error shape. The answer is
raw PCM (24 kHz mono int16) for ``response_format="pcm"``, or the same audio in a WAV file for ``"wav"``;
it is streamed in 100 ms pieces. Other formats are valid requests the test server cannot encode: 400.

``server.script`` keys:

- ``"speech"``: a list consumed one entry per request, in order. An entry is a dict with any of ``status``
  (answer this HTTP error instead, e.g. 500 or 429), ``message`` (the error's message), ``delay`` (seconds
  to wait before answering), ``audio`` (the PCM to answer, 24 kHz int16) and ``engine``.
- ``"speech_delay"``: seconds to wait before every answer.
- ``"speech_engine"``: how audio is made when no entry gives it: ``"tone"`` (default: a 220 Hz tone,
  60 ms per character, deterministic and instant) or ``"espeak"`` (real speech from the shared espeak-ng
  worker process, resampled to 24 kHz).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import wave
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import numpy as np
from openai.types.audio.speech_create_params import SpeechCreateParams
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ._server import RecordedRequest, error_response, scripted_fault

if TYPE_CHECKING:
    from ._server import OpenAITestServer

SPEECH_SAMPLE_RATE = 24000
_PIECE_BYTES = SPEECH_SAMPLE_RATE // 10 * 2
_KNOWN_KEYS = SpeechCreateParams.__required_keys__ | SpeechCreateParams.__optional_keys__


class _Params(BaseModel):
    """Wraps the SDK's TypedDict so pydantic checks it strictly."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")
    params: SpeechCreateParams


def routes(server: OpenAITestServer) -> list[BaseRoute]:
    async def speech(request: Request) -> Response:
        return await _speech(server, request)

    return [Route("/v1/audio/speech", speech, methods=["POST"])]


async def _speech(server: OpenAITestServer, request: Request) -> Response:
    denied = server.check_auth(request)
    raw = await request.body()
    body: Any = None
    problem: str | None = None
    try:
        body = json.loads(raw)
    except ValueError as exc:
        problem = f"the body is not JSON: {exc}"
    recorded = RecordedRequest(request.method, request.url.path, body, dict(request.headers))
    server.requests.append(recorded)
    if denied is not None:
        return denied
    if problem is None:
        problem = _validate(body)
    if problem is not None:
        recorded.problem = problem
        return error_response(400, problem)
    response_format = body.get("response_format", "mp3")
    if response_format not in ("pcm", "wav"):
        return error_response(400, f"the test server answers pcm or wav only, not {response_format}")

    entry = _next_entry(server)
    if (fault := await scripted_fault(entry, float(server.script.get("speech_delay", 0.0)))) is not None:
        return fault
    audio = entry.get("audio")
    if audio is None:
        engine = str(entry.get("engine", server.script.get("speech_engine", "tone")))
        audio = await render_speech(body["input"], engine, float(body.get("speed", 1.0)))
    if response_format == "wav":
        audio = _wav(audio)
    media_type = "audio/wav" if response_format == "wav" else "audio/pcm"
    return StreamingResponse(_pieces(audio), media_type=media_type)


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    unknown = sorted(set(body) - _KNOWN_KEYS)
    if unknown:
        return f"unknown parameters: {', '.join(unknown)}"
    try:
        _Params(params=body)  # type: ignore[arg-type]
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(str(p) for p in error['loc'][1:])}: {error['msg']}" for error in exc.errors()
        )
    text = body["input"]
    if not text or len(text) > 4096:
        return "input: must be 1 to 4096 characters"
    speed = body.get("speed")
    if speed is not None and not 0.25 <= float(speed) <= 4.0:
        return "speed: must be between 0.25 and 4.0"
    return None


def _next_entry(server: OpenAITestServer) -> dict[str, Any]:
    scripted = server.script.get("speech")
    if not scripted:
        return {}
    return dict(scripted.pop(0))


async def render_speech(text: str, engine: str = "tone", speed: float = 1.0) -> bytes:
    """24 kHz int16 PCM for ``text``: a tone (60 ms per character) or espeak-ng speech."""
    if engine == "espeak":
        from ...services.local.speech_engines import shared_speech_worker

        worker = shared_speech_worker("espeak")
        request = await worker.synthesize(text, {"rate": round(150 * speed)})
        pieces = []
        async with request:
            async for event in request:
                if isinstance(event, bytes):
                    pieces.append(event)
        info = worker.info
        rate = info.sample_rate if info is not None else 22050
        import soxr  # type: ignore[import-untyped]

        pcm = np.frombuffer(b"".join(pieces), dtype=np.int16)
        return bytes(soxr.resample(pcm, rate, SPEECH_SAMPLE_RATE).astype(np.int16).tobytes())
    if engine != "tone":
        raise ValueError(f"unknown speech engine {engine!r}")
    samples = int(SPEECH_SAMPLE_RATE * 0.06 * len(text) / speed)
    t = np.arange(samples) / SPEECH_SAMPLE_RATE
    tone = 0.3 * np.sin(2 * math.pi * 220.0 * t) * 32767
    return bytes(tone.astype(np.int16).tobytes())


def _wav(pcm: bytes) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SPEECH_SAMPLE_RATE)
        wav.writeframes(pcm)
    return buffer.getvalue()


async def _pieces(audio: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(audio), _PIECE_BYTES):
        yield audio[start : start + _PIECE_BYTES]
        await asyncio.sleep(0)
