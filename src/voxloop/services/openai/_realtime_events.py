"""The server events of the Realtime service (``openai.types.realtime`` models), one handler each.

Functions of :class:`~voxloop.services.openai.realtime.OpenAIRealtimeService` (its first argument), kept
apart so each file stays readable; every handler runs on the service's receive task, in the order the
server sent them.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import TYPE_CHECKING, Any

from ...frames import (
    AggregatedTextProgressFrame,
    AggregationType,
    ErrorCategory,
    ErrorFrame,
    InterimTranscriptionFrame,
    LLMTextFrame,
    LLMTokenUsage,
    TranscriptionFinishedFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from ...pipeline import UPSTREAM
from ..stt import iso8601_now
from ._realtime_calls import run_calls
from ._realtime_responses import close_response, open_response, request_response, start_measuring
from ._realtime_settings import SAMPLE_RATE, ServerVAD

if TYPE_CHECKING:
    from .realtime import OpenAIRealtimeService

logger = logging.getLogger("voxloop.services.realtime")

# Errors that say "nothing to do", not "something broke".
_BENIGN = {
    "response_cancel_not_active",
    "input_audio_buffer_commit_empty",
}
_AUTH = {"invalid_api_key", "missing_api_key", "invalid_authentication"}
_CATEGORIES = {
    "invalid_request_error": ErrorCategory.INVALID_REQUEST,
    "server_error": ErrorCategory.SERVER,
    "rate_limit_error": ErrorCategory.RATE_LIMIT,
    "authentication_error": ErrorCategory.AUTHENTICATION,
}
_SENTENCE_END = (".", "!", "?", "。")
_MAX_TRANSCRIPTS = 64


async def handle_server_event(svc: OpenAIRealtimeService, event: Any) -> None:
    handler = _HANDLERS.get(event.type)
    if handler is None:
        logger.debug("%s: %s", svc, event.type)
        return
    await handler(svc, event)


# -- session ----------------------------------------------------------------------------------


async def _on_session_created(svc: OpenAIRealtimeService, event: Any) -> None:
    await svc._replay_context()
    svc._ready.set()
    first = not svc._connected_once
    svc._connected_once = True
    await svc._call_event_handler("on_connected")
    if not first:
        logger.info("%s: reconnected", svc)
    if svc._create_on_ready or svc._create_pending:
        svc._create_on_ready = svc._create_pending = False
        await request_response(svc)


async def _on_session_updated(svc: OpenAIRealtimeService, event: Any) -> None:
    svc._configured.set()


# -- the user -----------------------------------------------------------------------------------


async def _on_speech_started(svc: OpenAIRealtimeService, event: Any) -> None:
    detection = svc.realtime_settings.turn_detection
    interrupts = detection is not None and detection.interrupt_response
    busy = (svc._response is not None and svc._response.active) or svc._bot_speaking
    if interrupts and (busy or svc._played.unplayed(svc.clock.now_ns())):
        # The server cancels its response itself; the audio already here must stop now.
        await svc._cut_in(cancel=False)
        await svc.broadcast_interruption()
    await svc.push_frame(VADUserStartedSpeakingFrame(start_secs=0.0, timestamp=time.time()), UPSTREAM)


async def _on_speech_stopped(svc: OpenAIRealtimeService, event: Any) -> None:
    detection = svc.realtime_settings.turn_detection
    silence_ms = 500
    if isinstance(detection, ServerVAD) and detection.silence_duration_ms is not None:
        silence_ms = detection.silence_duration_ms
    await start_measuring(svc)
    stopped = VADUserStoppedSpeakingFrame(stop_secs=silence_ms / 1000, timestamp=time.time())
    await svc.push_frame(stopped, UPSTREAM)


async def _on_committed(svc: OpenAIRealtimeService, event: Any) -> None:
    svc._unanswered_audio = True
    svc._responded_since_input = False
    if svc.realtime_settings.input_transcription is None:
        await svc.push_frame(TranscriptionFinishedFrame(text=""), UPSTREAM)


async def _on_transcription_delta(svc: OpenAIRealtimeService, event: Any) -> None:
    text = svc._transcripts.get(event.item_id, "") + (event.delta or "")
    svc._transcripts[event.item_id] = text
    if len(svc._transcripts) > _MAX_TRANSCRIPTS:
        svc._transcripts.pop(next(iter(svc._transcripts)))
    if text.strip():
        await svc.push_frame(InterimTranscriptionFrame(text.strip(), timestamp=iso8601_now()), UPSTREAM)


async def _on_transcription_completed(svc: OpenAIRealtimeService, event: Any) -> None:
    svc._transcripts.pop(event.item_id, None)
    text = (event.transcript or "").strip()
    if text:
        svc._sync.user_audio_transcribed(text)
        frame = TranscriptionFrame(text, timestamp=iso8601_now(), finalized=True)
        await svc.push_frame(frame, UPSTREAM)
    await svc.push_frame(TranscriptionFinishedFrame(text=text), UPSTREAM)


async def _on_transcription_failed(svc: OpenAIRealtimeService, event: Any) -> None:
    svc._transcripts.pop(event.item_id, None)
    logger.warning("%s: input transcription failed: %s", svc, getattr(event.error, "message", event))
    await svc.push_frame(TranscriptionFinishedFrame(text=""), UPSTREAM)


# -- responses ----------------------------------------------------------------------------------


async def _on_response_created(svc: OpenAIRealtimeService, event: Any) -> None:
    await open_response(svc, event.response.id)


async def _on_output_item_added(svc: OpenAIRealtimeService, event: Any) -> None:
    item = event.item
    if getattr(item, "type", None) == "function_call" and item.call_id:
        svc._sync.server_call(item.call_id)


def _live_response(svc: OpenAIRealtimeService, response_id: str) -> Any:
    response = svc._response
    if response is None or response.id != response_id or response.interrupted or response.closed:
        return None  # a response we stopped: whatever it still sends was never heard
    return response


async def _on_audio_delta(svc: OpenAIRealtimeService, event: Any) -> None:
    response = _live_response(svc, event.response_id)
    if response is None:
        return
    if not response.audio_started:
        response.audio_started = True
        svc._measuring = False
        await svc.stop_ttfb_metrics()
        await svc.push_frame(TTSStartedFrame(context_id=response.id))
    pcm = base64.b64decode(event.delta)
    svc._played.received(event.item_id, event.content_index, len(pcm), svc.clock.now_ns())
    for piece in svc._pacer.split(event.item_id, pcm):
        if isinstance(piece, bytes):
            await svc.push_frame(TTSAudioRawFrame(piece, SAMPLE_RATE, 1, context_id=response.id))
        else:
            await _push_spoken(svc, response, piece)


async def _push_spoken(svc: OpenAIRealtimeService, response: Any, text: str) -> None:
    """A piece of the transcript whose audio starts playing: context text and bot-output progress."""
    if not response.sentence:
        response.segment += 1
    frame = TTSTextFrame(text, aggregated_by=AggregationType.WORD, context_id=response.id)
    frame.will_be_spoken = True
    frame.includes_inter_frame_spaces = True
    await svc.push_frame(frame)
    response.sentence += text
    sentence = response.sentence.strip()
    await svc.push_frame(
        AggregatedTextProgressFrame(
            segment_id=hash((response.id, response.segment)) & 0x7FFFFFFF,
            text=text.strip(),
            accumulated_text=sentence,
            remaining_text="",
            aggregated_by=AggregationType.SENTENCE,
            context_id=response.id,
        )
    )
    if sentence.endswith(_SENTENCE_END):
        response.sentence = ""


async def _on_transcript_delta(svc: OpenAIRealtimeService, event: Any) -> None:
    response = _live_response(svc, event.response_id)
    if response is None or not event.delta:
        return
    svc._pacer.add(event.item_id, event.delta)
    bot_text = LLMTextFrame(event.delta)
    bot_text.append_to_context = False  # the spoken TTSTextFrames carry it into the context
    await svc.push_frame(bot_text)


async def _on_transcript_done(svc: OpenAIRealtimeService, event: Any) -> None:
    svc._sync.assistant_said(event.transcript or "")


async def _on_audio_done(svc: OpenAIRealtimeService, event: Any) -> None:
    response = _live_response(svc, event.response_id)
    if response is None:
        return
    for text in svc._pacer.flush():
        await _push_spoken(svc, response, text)


async def _on_text_delta(svc: OpenAIRealtimeService, event: Any) -> None:
    response = _live_response(svc, event.response_id)
    if response is None or not event.delta:
        return
    if not response.text_started:
        response.text_started = True
        svc._measuring = False
        await svc.stop_ttfb_metrics()
    await svc._push_text(event.delta)


async def _on_text_done(svc: OpenAIRealtimeService, event: Any) -> None:
    svc._sync.assistant_said(event.text or "")


async def _on_arguments_done(svc: OpenAIRealtimeService, event: Any) -> None:
    response = svc._response
    svc._sync.server_call(event.call_id)
    if response is not None and response.id == event.response_id:
        response.calls[event.call_id] = (event.name, event.arguments or "{}")


async def _on_response_done(svc: OpenAIRealtimeService, event: Any) -> None:
    done = event.response
    response = svc._response
    if response is None or response.id != done.id:
        response = None
    else:
        response.active = False
        if not response.closed:
            for text in svc._pacer.flush():
                await _push_spoken(svc, response, text)
            await close_response(svc, response)
    await _report_usage(svc, done.usage)
    if not (response is not None and response.interrupted):
        svc._measuring = False
        await svc.stop_processing_metrics()
    if done.status == "failed":
        await _report_failed_response(svc, done)
    if response is not None and response.calls:
        await run_calls(svc, response)
    if svc._create_pending:
        svc._create_pending = False
        await request_response(svc)


async def _report_usage(svc: OpenAIRealtimeService, usage: Any) -> None:
    if usage is None:
        return
    details_in = usage.input_token_details
    details_out = usage.output_token_details
    cached = details_in.cached_tokens if details_in is not None else None
    cached_details = details_in.cached_tokens_details if details_in is not None else None
    await svc.start_llm_usage_metrics(
        LLMTokenUsage(
            prompt_tokens=usage.input_tokens or 0,
            completion_tokens=usage.output_tokens or 0,
            total_tokens=usage.total_tokens or 0,
            cache_read_input_tokens=cached,
            input_audio_tokens=details_in.audio_tokens if details_in is not None else None,
            output_audio_tokens=details_out.audio_tokens if details_out is not None else None,
            cache_read_input_audio_tokens=cached_details.audio_tokens if cached_details else None,
        )
    )


async def _report_failed_response(svc: OpenAIRealtimeService, done: Any) -> None:
    error = getattr(done.status_details, "error", None)
    message = getattr(error, "message", None) or "the response failed"
    category = _CATEGORIES.get(getattr(error, "type", None) or "", ErrorCategory.SERVER)
    logger.error("%s: response %s failed: %s", svc, done.id, message)
    frame = ErrorFrame(error=f"{svc.name}: {message}", processor=svc, category=category)
    await svc._call_event_handler("on_error", frame)
    await svc.push_frame(frame, UPSTREAM)


# -- errors -------------------------------------------------------------------------------------


async def _on_error(svc: OpenAIRealtimeService, event: Any) -> None:
    error = event.error
    code, message = error.code or "", error.message or ""
    what = svc._sent.get(error.event_id or "", "")
    if code in _BENIGN:
        logger.debug("%s: %s (%s)", svc, message, code)
    elif code == "conversation_already_has_active_response":
        logger.debug("%s: %s", svc, message)
        svc._create_in_flight = False
        if not svc._create_retried:
            svc._create_retried = True
            svc._create_pending = True  # asked again once the active response is done
    elif what == "truncate" or code.startswith("item_truncate") or "shorter than" in message:
        logger.warning("%s: truncation refused (the session goes on): %s", svc, message)
    elif code in _AUTH or error.type == "authentication_error":
        from .realtime import RealtimeAuthError

        raise RealtimeAuthError(f"the OpenAI API key was refused: {message}")
    else:
        category = _CATEGORIES.get(error.type or "", ErrorCategory.UNKNOWN)
        logger.error("%s: Realtime API error %s: %s", svc, code or error.type, message)
        if what == "response.create":
            svc._create_in_flight = False
        frame = ErrorFrame(error=f"{svc.name}: {message}", processor=svc, category=category)
        await svc._call_event_handler("on_error", frame)
        await svc.push_frame(frame, UPSTREAM)


_HANDLERS: dict[str, Any] = {
    "session.created": _on_session_created,
    "session.updated": _on_session_updated,
    "input_audio_buffer.speech_started": _on_speech_started,
    "input_audio_buffer.speech_stopped": _on_speech_stopped,
    "input_audio_buffer.committed": _on_committed,
    "conversation.item.input_audio_transcription.delta": _on_transcription_delta,
    "conversation.item.input_audio_transcription.completed": _on_transcription_completed,
    "conversation.item.input_audio_transcription.failed": _on_transcription_failed,
    "response.created": _on_response_created,
    "response.output_item.added": _on_output_item_added,
    "response.output_audio.delta": _on_audio_delta,
    "response.output_audio.done": _on_audio_done,
    "response.output_audio_transcript.delta": _on_transcript_delta,
    "response.output_audio_transcript.done": _on_transcript_done,
    "response.output_text.delta": _on_text_delta,
    "response.output_text.done": _on_text_done,
    "response.function_call_arguments.done": _on_arguments_done,
    "response.done": _on_response_done,
    "error": _on_error,
}
