"""The realtime bot: OpenAI's Realtime speech-to-speech model in place of STT + LLM + TTS.

    client -> RTVI -> input -> user context -> OpenAI Realtime -> output -> assistant context

Needs ``OPENAI_API_KEY`` (or ``OPENAI_BASE_URL`` pointing at a compatible server, such as the test
emulator). ``VOXLOOP_REALTIME_MODEL`` and ``VOXLOOP_REALTIME_VOICE`` choose the model and voice. The server's
VAD decides the turns, the bot can tell the time through a real function call, and clients change the
session's settings with a ``client-message`` of type ``llm-update-settings`` (``d``: a settings dict such
as ``{"voice": "cedar", "instructions": "..."}``) or, for 0.x clients, ``update-config`` of the ``llm``
service. Clients may change only ``voice``, ``instructions``, ``modality`` and ``max_output_tokens`` (not
the model, which decides what the session costs); anything else, or an invalid value, is answered with an
``error-response`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..context import LLMContext, LLMContextAggregatorPair
from ..frames import LLMUpdateSettingsFrame
from ..pipeline import Pipeline, PipelineParams, PipelineTask
from ..rtvi import RequestError, RTVIProcessor
from ..rtvi.legacy import RTVIService, RTVIServiceOption
from ..services.local.demo_agent import TIME_FUNCTION, TIME_TOOL, current_time
from ..services.openai import OpenAIRealtimeService, RealtimeSettings, make_client
from ..transports import Transport
from ..turns import UserTurnParams
from . import SessionInfo

SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Keep your answers to one to three short spoken sentences. "
    "Use the get_current_time tool for the time or the date."
)
_SETTINGS_MESSAGE = "llm-update-settings"
# What a client may change; the model is the operator's choice (it sets the price of the session).
CLIENT_SETTINGS = ("voice", "instructions", "modality", "max_output_tokens")


def realtime_settings() -> RealtimeSettings:
    settings = RealtimeSettings()
    settings.model = os.environ.get("VOXLOOP_REALTIME_MODEL", settings.model)
    settings.voice = os.environ.get("VOXLOOP_REALTIME_VOICE", settings.voice)
    return settings


async def preload(timeout_secs: float = 10.0) -> None:
    """Check, before serving, that the Realtime API is configured and the key is accepted."""
    try:
        client = make_client("the realtime bot", None, None)
    except ValueError as exc:
        raise SystemExit(f"voxloop: {exc}") from None
    model = realtime_settings().model
    where = os.environ.get("OPENAI_BASE_URL") or "api.openai.com"
    try:
        async with asyncio.timeout(timeout_secs), client.realtime.connect(model=model) as conn:
            event = await conn.recv()
    except TimeoutError:
        raise SystemExit(f"voxloop: the Realtime API at {where} did not answer") from None
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise SystemExit(f"voxloop: the OpenAI API key was refused by {where} (HTTP {status})") from None
        raise SystemExit(f"voxloop: cannot reach the Realtime API at {where}: {exc}") from None
    finally:
        await client.close()
    if event.type == "error":
        raise SystemExit(f"voxloop: the Realtime API at {where} refused the session: {event.error.message}")
    print(f"voxloop:   realtime model {model} at {where}: ready", flush=True)


def client_settings_problem(realtime: OpenAIRealtimeService, changes: Any) -> str | None:
    """Why a client's settings change is refused (None: it may be applied)."""
    if not isinstance(changes, dict) or not changes:
        return f"{_SETTINGS_MESSAGE} needs an object of settings ({', '.join(CLIENT_SETTINGS)})"
    refused = sorted(str(key) for key in changes if key not in CLIENT_SETTINGS)
    if refused:
        return (
            f"settings a client may not change: {', '.join(refused)} (allowed: {', '.join(CLIENT_SETTINGS)})"
        )
    try:
        realtime.realtime_settings.checked(changes)
    except ValueError as exc:
        return str(exc)
    return None


def _client_settings(rtvi: RTVIProcessor, realtime: OpenAIRealtimeService) -> None:
    """Let the client change the session: RTVI 1.x/2.x client-message, 0.x update-config."""

    @rtvi.event_handler("on_client_message")
    async def on_client_message(processor: RTVIProcessor, message: Any) -> None:
        if message.type != _SETTINGS_MESSAGE:
            return
        problem = client_settings_problem(realtime, message.data)
        if problem is not None:
            await processor.send_error_response(message, problem)
            return
        await processor.push_frame(LLMUpdateSettingsFrame(settings=dict(message.data), service=realtime))

    def option(name: str, kind: Any) -> RTVIServiceOption:
        async def apply(processor: RTVIProcessor, service: str, value: dict[str, Any]) -> None:
            problem = client_settings_problem(realtime, {name: value["value"]})
            if problem is not None:
                raise RequestError(problem)  # answered with an error-response
            frame = LLMUpdateSettingsFrame(settings={name: value["value"]}, service=realtime)
            await processor.push_frame(frame)

        return RTVIServiceOption(name=name, type=kind, handler=apply)

    kinds = {"voice": "string", "instructions": "string", "modality": "string", "max_output_tokens": "number"}
    options = [option(name, kinds[name]) for name in CLIENT_SETTINGS]
    rtvi.register_service(RTVIService(name="llm", options=options), warn=False)


def create_bot(
    transport: Transport, session: SessionInfo, *, context: LLMContext | None = None
) -> PipelineTask:
    """One session's pipeline. ``context``: start from this conversation (tests read it back)."""
    if context is None:
        context = LLMContext([{"role": "system", "content": SYSTEM_PROMPT}], tools=[TIME_TOOL])
    # The server's VAD stops the bot at speech onset itself, and the service counts played audio by time,
    # so our own pause-on-speech would only skew the truncation point: off for this bot.
    aggregators = LLMContextAggregatorPair(context, user_params=UserTurnParams(pause_on_speech=False))
    realtime = OpenAIRealtimeService(
        settings=realtime_settings(), context=context, transcript_lead_ms=transport.params.audio_out_lead_ms
    )
    realtime.register_function(TIME_FUNCTION, current_time)
    rtvi = RTVIProcessor()
    _client_settings(rtvi, realtime)
    pipeline = Pipeline(
        [rtvi, transport.input(), aggregators.user(), realtime, transport.output(), aggregators.assistant()]
    )
    return PipelineTask(
        pipeline,
        params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
        idle_timeout_secs=300,
        name=f"realtime-{session.session_id}",
    )
