"""``POST /v1/audio/transcriptions`` for :class:`OpenAITestServer`.

The multipart request is checked against the SDK's own ``TranscriptionCreateParamsNonStreaming`` (unknown
fields, wrong types and values are problems) and the audio file must be a readable file with a supported
extension (a WAV must parse as 16-bit PCM). An invalid request is recorded with its problem and answered 400
in OpenAI's error shape. Answers are built from the SDK's ``Transcription`` model (``response_format`` json,
or the bare text for ``text``).

``server.script`` keys:

- ``"transcriptions"``: a list consumed one entry per request, in order. An entry is the text to answer
  (``str``), or a dict with any of ``text``, ``status`` (answer this HTTP error instead, e.g. 500 or 429),
  ``message`` (the error's message) and ``delay`` (seconds to wait before answering).
- ``"transcription_delay"``: seconds to wait before every answer.

When no scripted entry is left the audio is really transcribed with the local Whisper model
(``voxloop.services.local.whisper``), so tests get realistic text.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import io
import wave
from typing import TYPE_CHECKING, Any

from openai.types.audio import Transcription
from openai.types.audio.transcription import UsageDuration
from openai.types.audio.transcription_create_params import TranscriptionCreateParamsNonStreaming
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ._server import RecordedRequest, error_response, scripted_fault

if TYPE_CHECKING:
    from ._server import OpenAITestServer

_AUDIO_EXTENSIONS = {"flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm"}


class _Params(BaseModel):
    """Wraps the SDK's TypedDict so pydantic checks it strictly (unknown keys are errors)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")
    params: TranscriptionCreateParamsNonStreaming


def routes(server: OpenAITestServer) -> list[BaseRoute]:
    async def transcriptions(request: Request) -> Response:
        return await _transcribe(server, request)

    return [Route("/v1/audio/transcriptions", transcriptions, methods=["POST"])]


async def _transcribe(server: OpenAITestServer, request: Request) -> Response:
    denied = server.check_auth(request)
    body = await request.body()
    fields, audio, problem = _parse_multipart(request.headers.get("content-type", ""), body)
    recorded = RecordedRequest(
        method=request.method,
        path=request.url.path,
        body=fields,
        headers=dict(request.headers),
    )
    server.requests.append(recorded)
    if denied is not None:
        return denied
    if problem is None:
        problem = _validate(fields, audio)
    if problem is not None:
        recorded.problem = problem
        return error_response(400, problem)
    if fields.get("stream") is True:
        return error_response(400, "streaming transcriptions are not supported by the test server")

    entry = _next_entry(server)
    if (
        fault := await scripted_fault(entry, float(server.script.get("transcription_delay", 0.0)))
    ) is not None:
        return fault
    assert audio is not None
    pcm, rate, seconds = audio
    text = entry.get("text")
    if text is None:
        text = await _transcribe_locally(pcm, rate, fields.get("language"), fields.get("prompt"))
    if fields.get("response_format") == "text":
        return PlainTextResponse(text)
    answer = Transcription(text=text, usage=UsageDuration(seconds=round(seconds, 3), type="duration"))
    return Response(answer.model_dump_json(exclude_none=True), media_type="application/json")


def _parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, Any], tuple[bytes, int, float] | None, str | None]:
    """The form fields (the file described, not included), the decoded audio, and a problem if any."""
    if not content_type.startswith("multipart/form-data"):
        return {}, None, f"expected multipart/form-data, got {content_type or 'no content type'}"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return {}, None, "the multipart body could not be parsed"
    fields: dict[str, Any] = {}
    audio: tuple[bytes, int, float] | None = None
    problem: str | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            return fields, None, "a form part has no name"
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            fields[name] = {"filename": filename, "content_type": part.get_content_type(), "size": len(data)}
            if name == "file":
                audio, problem = _read_audio(filename, data)
            continue
        value: Any = data.decode("utf-8")
        if name == "stream":
            value = {"true": True, "false": False}.get(value, value)
        if name.endswith("[]"):
            fields.setdefault(name[:-2], []).append(value)
        else:
            fields[name] = value
    return fields, audio, problem


def _read_audio(filename: str, data: bytes) -> tuple[tuple[bytes, int, float] | None, str | None]:
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension not in _AUDIO_EXTENSIONS:
        return None, f"Invalid file format. Supported formats: {sorted(_AUDIO_EXTENSIONS)}"
    if not data:
        return None, "the audio file is empty"
    if extension != "wav":
        return (b"", 16000, 0.0), None  # accepted, but only WAV is decoded here
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            if wav.getsampwidth() != 2:
                return None, "the test server decodes 16-bit PCM WAV only"
            pcm = wav.readframes(wav.getnframes())
            rate, channels = wav.getframerate(), wav.getnchannels()
    except (wave.Error, EOFError) as exc:
        return None, f"the audio file could not be decoded: {exc}"
    if channels != 1:
        from ...audio import to_mono

        pcm = to_mono(pcm, channels)
    return (pcm, rate, len(pcm) / 2 / rate), None


def _validate(fields: dict[str, Any], audio: tuple[bytes, int, float] | None) -> str | None:
    params = dict(fields)
    if "file" in params:
        info = params["file"]
        params["file"] = (info["filename"], b"", info["content_type"])
    try:
        _Params(params=params)  # type: ignore[arg-type]
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(str(p) for p in error['loc'][1:])}: {error['msg']}" for error in exc.errors()
        )
    if audio is None:
        return "the request has no audio file"
    return None


def _next_entry(server: OpenAITestServer) -> dict[str, Any]:
    scripted = server.script.get("transcriptions")
    if not scripted:
        return {}
    entry = scripted.pop(0)
    return {"text": entry} if isinstance(entry, str) else dict(entry)


async def _transcribe_locally(pcm: bytes, rate: int, language: Any, prompt: Any) -> str:
    if not pcm:
        return ""
    from ...services.local.whisper import load_whisper_model, transcribe_pcm, whisper_executor

    def run() -> str:
        model = load_whisper_model()
        lang = language if isinstance(language, str) and language else None
        hint = prompt if isinstance(prompt, str) and prompt else None
        return transcribe_pcm(model, pcm, rate, language=lang, prompt=hint).text

    # On the process-wide Whisper thread, like the local STT service: transcriptions never run side by side.
    return await asyncio.get_running_loop().run_in_executor(whisper_executor(), run)
