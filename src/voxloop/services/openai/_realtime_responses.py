"""The Realtime service's responses: asking for one, opening and closing one, and stopping the bot at an
interruption (cancel the response, truncate the server's copy at what was played).

Functions of :class:`~voxloop.services.openai.realtime.OpenAIRealtimeService` (their first argument).
Requests coalesce: while a response is active (or one was just asked for), another request waits for its
``response.done``, so the server never refuses one as "already has an active response".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...frames import LLMFullResponseEndFrame, LLMFullResponseStartFrame, TTSStoppedFrame

if TYPE_CHECKING:
    from .realtime import OpenAIRealtimeService

logger = logging.getLogger("voxloop.services.realtime")


@dataclass
class Response:
    """One response of the model, from ``response.created`` to ``response.done``."""

    id: str
    active: bool = True
    interrupted: bool = False
    closed: bool = False  # LLMFullResponseEndFrame pushed
    audio_started: bool = False
    text_started: bool = False
    calls: dict[str, tuple[str, str]] = field(default_factory=dict)  # call_id -> (name, arguments)
    segment: int = 0  # id of the sentence being spoken (bot-output progress)
    sentence: str = ""


async def request_response(svc: OpenAIRealtimeService) -> None:
    """Ask for one response; while one is active, once it is done (requests coalesce)."""
    svc._unanswered_audio = False
    svc._responded_since_input = True
    if not svc._ready.is_set():
        svc._create_on_ready = True
        return
    if svc._create_in_flight or (svc._response is not None and svc._response.active):
        svc._create_pending = True
        return
    svc._create_in_flight = True
    if not svc._measuring:
        await start_measuring(svc)
    response: dict[str, Any] = {}
    if svc._skip_tts:
        response["output_modalities"] = ["text"]
    await svc._send("response.create", "response.create", response=response)


async def start_measuring(svc: OpenAIRealtimeService) -> None:
    svc._measuring = True
    await svc.start_ttfb_metrics()
    await svc.start_processing_metrics()


async def stop_output(svc: OpenAIRealtimeService, *, cancel: bool) -> None:
    """Stop the bot now: cancel the active response, truncate what was not heard, drop the rest."""
    now = svc.clock.now_ns()
    response = svc._response
    if response is not None and response.active and not response.interrupted:
        response.interrupted = True
        if cancel:
            await svc._send("response.cancel", "response.cancel")
    item = svc._played.item
    if item is not None and not item.truncated and svc._played.unplayed(now):
        item.truncated = True
        end_ms = svc._played.played_ms(now)
        logger.debug("%s: truncating %s at %d ms", svc, item.item_id, end_ms)
        await svc._send(
            "truncate",
            "conversation.item.truncate",
            item_id=item.item_id,
            content_index=item.content_index,
            audio_end_ms=end_ms,
        )
    svc._played.stop(now)
    svc._pacer.clear()
    svc._measuring = False
    if response is not None and not response.closed:
        await close_response(svc, response)


async def close_response(svc: OpenAIRealtimeService, response: Response) -> None:
    response.closed = True
    if response.audio_started:
        await svc.push_frame(TTSStoppedFrame(context_id=response.id))
    await svc.push_frame(LLMFullResponseEndFrame())


async def open_response(svc: OpenAIRealtimeService, response_id: str) -> Response:
    response = svc._response = Response(response_id)
    svc._create_in_flight = False
    svc._create_retried = False
    svc._responded_since_input = True
    svc._unanswered_audio = False
    await svc.push_frame(LLMFullResponseStartFrame())
    return response
