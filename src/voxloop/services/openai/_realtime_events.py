"""The server events the Realtime core handles: one table, event type -> handler of that SDK model.

Each :class:`_Route` pairs an ``openai.types.realtime`` event model with its handler, so mypy checks
that the handler takes that model, and the table's key is the model's own ``type`` literal (no event
name is spelled twice). Handlers are plain functions of the core: they change its state and queue
actions, never await. Events without a route (rate limits, content parts...) are logged and ignored.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, get_args

from openai.types.realtime import (
    ConversationItemAdded,
    ConversationItemDone,
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemInputAudioTranscriptionDeltaEvent,
    ConversationItemInputAudioTranscriptionFailedEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    RealtimeErrorEvent,
    RealtimeResponse,
    RealtimeResponseUsage,
    RealtimeServerEvent,
    ResponseAudioDeltaEvent,
    ResponseAudioDoneEvent,
    ResponseAudioTranscriptDeltaEvent,
    ResponseAudioTranscriptDoneEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseOutputItemAddedEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
)
from openai.types.realtime.realtime_server_event import ConversationItemRetrieved
from pydantic import BaseModel

from ...frames import (
    ErrorCategory,
    InterimTranscriptionFrame,
    LLMTextFrame,
    LLMTokenUsage,
    TranscriptionFinishedFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from ...pipeline import UPSTREAM
from ..stt import iso8601_now
from ._realtime_actions import (
    AudioLeaving,
    AuthRefused,
    BroadcastInterruption,
    Configured,
    Connected,
    ItemEvent,
    ItemRetrieved,
    Push,
    ReportError,
    ReportUsage,
    StopProcessing,
    StopTTFB,
)
from ._realtime_conversation import RETRIEVE_PREFIX
from ._realtime_settings import SAMPLE_RATE, ServerVAD

if TYPE_CHECKING:
    from ._realtime_core import RealtimeCore

logger = logging.getLogger("voxloop.services.realtime")

# Errors that say "nothing to do", not "something broke".
_BENIGN = {"response_cancel_not_active", "input_audio_buffer_commit_empty"}
_AUTH = {"invalid_api_key", "missing_api_key", "invalid_authentication"}
_CATEGORIES = {
    "invalid_request_error": ErrorCategory.INVALID_REQUEST,
    "server_error": ErrorCategory.SERVER,
    "rate_limit_error": ErrorCategory.RATE_LIMIT,
    "authentication_error": ErrorCategory.AUTHENTICATION,
}
_DEFAULT_SILENCE_MS = 500

E = TypeVar("E", bound=BaseModel)


@dataclass(frozen=True)
class _Route(Generic[E]):
    model: type[E]
    handler: Callable[[RealtimeCore, E], None]

    @property
    def event_type(self) -> str:
        (literal,) = get_args(self.model.model_fields["type"].annotation)
        return cast(str, literal)


def dispatch(core: RealtimeCore, event: RealtimeServerEvent) -> None:
    """Hand ``event`` to its handler (the server's events arrive in order, one at a time)."""
    route = _TABLE.get(event.type)
    if route is None:
        logger.debug("%s: %s", core, event.type)
        return
    route.handler(core, event)


def handled_event_types() -> frozenset[str]:
    return frozenset(_TABLE)


# -- session --------------------------------------------------------------------------------------


def _session_created(core: RealtimeCore, event: SessionCreatedEvent) -> None:
    core.replay_context()
    core.ready = True
    first = not core.connected_once
    core.connected_once = True
    core.emit(Connected(first))
    if not first:
        logger.info("%s: reconnected", core)
    if core.responses.take_on_ready():
        core.request_response()


def _session_updated(core: RealtimeCore, event: SessionUpdatedEvent) -> None:
    core.emit(Configured())


# -- the user -------------------------------------------------------------------------------------


def _speech_started(core: RealtimeCore, event: InputAudioBufferSpeechStartedEvent) -> None:
    detection = core.settings.turn_detection
    interrupts = detection is not None and detection.interrupt_response
    busy = core.responses.active or core.turn.bot_speaking
    if interrupts and (busy or core.played.unplayed(core.now_ns)):
        # The server cancels its response itself; the audio already here must stop now.
        core.cut_in(cancel=False)
        core.emit(BroadcastInterruption())
    started = VADUserStartedSpeakingFrame(start_secs=0.0, timestamp=time.time())
    core.push(Push(started, UPSTREAM))


def _speech_stopped(core: RealtimeCore, event: InputAudioBufferSpeechStoppedEvent) -> None:
    detection = core.settings.turn_detection
    silence_ms = _DEFAULT_SILENCE_MS
    if isinstance(detection, ServerVAD) and detection.silence_duration_ms is not None:
        silence_ms = detection.silence_duration_ms
    core.start_measuring()
    stopped = VADUserStoppedSpeakingFrame(stop_secs=silence_ms / 1000, timestamp=time.time())
    core.push(Push(stopped, UPSTREAM))


def _committed(core: RealtimeCore, event: InputAudioBufferCommittedEvent) -> None:
    core.turn.audio_committed()
    if core.settings.input_transcription is None:
        core.push(Push(TranscriptionFinishedFrame(text=""), UPSTREAM))


def _transcription_delta(
    core: RealtimeCore, event: ConversationItemInputAudioTranscriptionDeltaEvent
) -> None:
    text = core.transcripts.delta(event.item_id, event.delta or "").strip()
    if text:
        core.push(Push(InterimTranscriptionFrame(text, timestamp=iso8601_now()), UPSTREAM))


def _transcription_completed(
    core: RealtimeCore, event: ConversationItemInputAudioTranscriptionCompletedEvent
) -> None:
    core.transcripts.end(event.item_id)
    text = (event.transcript or "").strip()
    if text:
        core.mirror.user_audio_transcribed(text)
        core.push(Push(TranscriptionFrame(text, timestamp=iso8601_now(), finalized=True), UPSTREAM))
    core.push(Push(TranscriptionFinishedFrame(text=text), UPSTREAM))


def _transcription_failed(
    core: RealtimeCore, event: ConversationItemInputAudioTranscriptionFailedEvent
) -> None:
    core.transcripts.end(event.item_id)
    logger.warning("%s: input transcription failed: %s", core, event.error.message)
    core.push(Push(TranscriptionFinishedFrame(text=""), UPSTREAM))


# -- conversation items ---------------------------------------------------------------------------


def _item_added(core: RealtimeCore, event: ConversationItemAdded) -> None:
    item_id = event.item.id or ""
    core.emit(ItemEvent("on_conversation_item_created", item_id, event.item))


def _item_done(core: RealtimeCore, event: ConversationItemDone) -> None:
    item_id = event.item.id or ""
    core.emit(ItemEvent("on_conversation_item_updated", item_id, event.item))


def _item_retrieved(core: RealtimeCore, event: ConversationItemRetrieved) -> None:
    item_id = event.item.id or ""
    if core.retrievals.answered(item_id):
        core.emit(ItemRetrieved(item_id, event.item))


# -- responses ------------------------------------------------------------------------------------


def _response_created(core: RealtimeCore, event: ResponseCreatedEvent) -> None:
    core.open_response(event.response.id or "")


def _output_item_added(core: RealtimeCore, event: ResponseOutputItemAddedEvent) -> None:
    call_id = getattr(event.item, "call_id", None)  # a function_call item
    if event.item.type == "function_call" and call_id:
        core.mirror.server_call(call_id)


def _audio_delta(core: RealtimeCore, event: ResponseAudioDeltaEvent) -> None:
    response = core.responses.live(event.response_id)
    if response is None:
        return  # a response we stopped: whatever it still sends was never heard
    if not response.audio_started:
        response.audio_started = True
        core.measuring = False
        core.emit(StopTTFB())
        core.push(Push(TTSStartedFrame(context_id=response.id)))
    pcm = base64.b64decode(event.delta)
    core.emit(AudioLeaving(event.item_id, event.content_index, len(pcm)))
    for piece in core.pacer.split(event.item_id, pcm):
        if isinstance(piece, bytes):
            core.push(Push(TTSAudioRawFrame(piece, SAMPLE_RATE, 1, context_id=response.id)))
        else:
            core.push_spoken(response, piece)


def _audio_done(core: RealtimeCore, event: ResponseAudioDoneEvent) -> None:
    response = core.responses.live(event.response_id)
    if response is not None:
        for text in core.pacer.flush():
            core.push_spoken(response, text)


def _transcript_delta(core: RealtimeCore, event: ResponseAudioTranscriptDeltaEvent) -> None:
    if core.responses.live(event.response_id) is None or not event.delta:
        return
    core.pacer.add(event.item_id, event.delta)
    bot_text = LLMTextFrame(event.delta)
    bot_text.append_to_context = False  # the spoken TTSTextFrames carry it into the context
    core.push(Push(bot_text))


def _transcript_done(core: RealtimeCore, event: ResponseAudioTranscriptDoneEvent) -> None:
    core.mirror.assistant_said(event.transcript or "")


def _text_delta(core: RealtimeCore, event: ResponseTextDeltaEvent) -> None:
    response = core.responses.live(event.response_id)
    if response is None or not event.delta:
        return
    if not response.text_started:
        response.text_started = True
        core.measuring = False
        core.emit(StopTTFB())
    core.push(Push(LLMTextFrame(event.delta)))  # text modality: what the context keeps


def _text_done(core: RealtimeCore, event: ResponseTextDoneEvent) -> None:
    core.mirror.assistant_said(event.text or "")


def _arguments_done(core: RealtimeCore, event: ResponseFunctionCallArgumentsDoneEvent) -> None:
    core.mirror.server_call(event.call_id)
    response = core.responses.current
    if response is not None and response.id == event.response_id:
        response.calls[event.call_id] = (event.name, event.arguments or "{}")


def _response_done(core: RealtimeCore, event: ResponseDoneEvent) -> None:
    done = event.response
    response = core.responses.finished(done.id)
    if response is not None and not response.closed:
        for text in core.pacer.flush():
            core.push_spoken(response, text)
        core.close_response(response)
    if done.usage is not None:
        core.emit(ReportUsage(_usage(done.usage)))
    if not (response is not None and response.interrupted):
        core.measuring = False
        core.emit(StopProcessing())
    if done.status == "failed":
        _report_failed(core, done)
    if response is not None and response.calls:
        core.run_calls(response)
    if core.responses.take_pending():
        core.request_response()


def _usage(usage: RealtimeResponseUsage) -> LLMTokenUsage:
    details_in = usage.input_token_details
    details_out = usage.output_token_details
    cached_details = details_in.cached_tokens_details if details_in is not None else None
    return LLMTokenUsage(
        prompt_tokens=usage.input_tokens or 0,
        completion_tokens=usage.output_tokens or 0,
        total_tokens=usage.total_tokens or 0,
        cache_read_input_tokens=details_in.cached_tokens if details_in is not None else None,
        input_audio_tokens=details_in.audio_tokens if details_in is not None else None,
        output_audio_tokens=details_out.audio_tokens if details_out is not None else None,
        cache_read_input_audio_tokens=cached_details.audio_tokens if cached_details else None,
    )


def _report_failed(core: RealtimeCore, done: RealtimeResponse) -> None:
    error = done.status_details.error if done.status_details is not None else None
    message = (error.message if error is not None else None) or "the response failed"
    category = _CATEGORIES.get((error.type if error is not None else None) or "", ErrorCategory.SERVER)
    logger.error("%s: response %s failed: %s", core, done.id, message)
    core.emit(ReportError(message, category))


# -- errors ---------------------------------------------------------------------------------------


def _error(core: RealtimeCore, event: RealtimeErrorEvent) -> None:
    error = event.error
    code, message = error.code or "", error.message or ""
    what = core.outbox.what(error.event_id)
    if what == "retrieve" and error.event_id:
        item_id = error.event_id.removeprefix(RETRIEVE_PREFIX)
        logger.warning("%s: retrieving item %s refused: %s", core, item_id, message)
        if core.retrievals.answered(item_id):
            core.emit(ItemRetrieved(item_id, error=message or code))
    elif code in _BENIGN:
        logger.debug("%s: %s (%s)", core, message, code)
    elif code == "conversation_already_has_active_response":
        logger.debug("%s: %s", core, message)
        core.responses.refused_as_busy()  # asked again once the active response is done
    elif what == "truncate" or code.startswith("item_truncate") or "shorter than" in message:
        logger.warning("%s: truncation refused (the session goes on): %s", core, message)
    elif code in _AUTH or error.type == "authentication_error":
        core.emit(AuthRefused(f"the OpenAI API key was refused: {message}"))
    else:
        logger.error("%s: Realtime API error %s: %s", core, code or error.type, message)
        if what == "response.create":
            core.responses.failed()
        core.emit(ReportError(message, _CATEGORIES.get(error.type or "", ErrorCategory.UNKNOWN)))


def _table(*routes: _Route[Any]) -> dict[str, _Route[Any]]:
    return {route.event_type: route for route in routes}


_TABLE = _table(
    _Route(SessionCreatedEvent, _session_created),
    _Route(SessionUpdatedEvent, _session_updated),
    _Route(InputAudioBufferSpeechStartedEvent, _speech_started),
    _Route(InputAudioBufferSpeechStoppedEvent, _speech_stopped),
    _Route(InputAudioBufferCommittedEvent, _committed),
    _Route(ConversationItemInputAudioTranscriptionDeltaEvent, _transcription_delta),
    _Route(ConversationItemInputAudioTranscriptionCompletedEvent, _transcription_completed),
    _Route(ConversationItemInputAudioTranscriptionFailedEvent, _transcription_failed),
    _Route(ConversationItemAdded, _item_added),
    _Route(ConversationItemDone, _item_done),
    _Route(ConversationItemRetrieved, _item_retrieved),
    _Route(ResponseCreatedEvent, _response_created),
    _Route(ResponseOutputItemAddedEvent, _output_item_added),
    _Route(ResponseAudioDeltaEvent, _audio_delta),
    _Route(ResponseAudioDoneEvent, _audio_done),
    _Route(ResponseAudioTranscriptDeltaEvent, _transcript_delta),
    _Route(ResponseAudioTranscriptDoneEvent, _transcript_done),
    _Route(ResponseTextDeltaEvent, _text_delta),
    _Route(ResponseTextDoneEvent, _text_done),
    _Route(ResponseFunctionCallArgumentsDoneEvent, _arguments_done),
    _Route(ResponseDoneEvent, _response_done),
    _Route(RealtimeErrorEvent, _error),
)
