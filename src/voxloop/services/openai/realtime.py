"""OpenAIRealtimeService: OpenAI's Realtime speech-to-speech model in place of STT + LLM + TTS.

Built on the official ``openai`` SDK (``client.realtime.connect``; the server's events arrive as its
``openai.types.realtime`` models). GA protocol: the model is in the URL, ``session.update`` follows
``session.created``, PCM16 at 24 kHz both ways. It sits where the LLM would::

    [rtvi, transport.input(), aggregators.user(), realtime, transport.output(), aggregators.assistant()]

(with a ``VADProcessor`` before the user aggregator when the server's turn detection is off).

How the conversation stays true:

- the user's words: the server's input transcription goes upstream as ``TranscriptionFrame``s (and
  ``VADUserStarted/StoppedSpeakingFrame``s from the server's VAD), so the user aggregator writes the user
  message and the client gets ``user-transcription``;
- the bot's words: the transcript is pushed as ``TTSTextFrame``s placed in the audio where they are spoken,
  so the assistant aggregator after the output transport stores what was heard, and after a barge-in only
  that; the server's copy is truncated at the audio played (``audio_end_ms`` never beyond what was
  received or played);
- everything else in the context (typed text, function results, history) is sent as items
  (:mod:`._realtime_conversation`); after a lost connection, or when the context was rewritten (an
  ``LLMMessagesUpdateFrame``, a summary), a fresh server conversation gets the whole context replayed.

Function calls go through the same :class:`~voxloop.services.functions.FunctionCallRunner` as the chat
LLMs; their results come back as a context frame from the assistant aggregator and are sent as
``function_call_output`` items followed by exactly one ``response.create``; calls made while the
user's turn is still being written wait for it, and calls an interruption overtook are answered
``CANCELLED``.

The service is a thin shell around a sans-I/O core (:class:`~._realtime_core.RealtimeCore`: events in,
actions out). Frames and server events go into the core; the actions it returns (send a client event,
push a frame, run calls, metrics) are carried out here, in order. The parts: ``_realtime_core`` (the
pipeline's inputs), ``_realtime_events`` (the server events, one table typed with the SDK's models),
the state objects ``_realtime_responses``, ``_realtime_turn``, ``_realtime_audio`` and
``_realtime_conversation``, ``_realtime_actions``, ``_realtime_connection`` (the SDK connection and its
task), ``_realtime_images`` and ``_realtime_settings``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from openai.types.realtime import RealtimeServerEvent

from ...frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    ErrorCategory,
    ErrorFrame,
    Frame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
    InputImageRawFrame,
    InterruptionFrame,
    LLMConfigureOutputFrame,
    LLMContextFrame,
    LLMSetToolsFrame,
    LLMUpdateSettingsFrame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from ...pipeline import DOWNSTREAM, UPSTREAM, FrameDirection
from ..llm import FunctionCallingService
from ._realtime_actions import (
    Action,
    AudioLeaving,
    AuthRefused,
    BroadcastInterruption,
    Configured,
    Connected,
    InterruptCalls,
    ItemEvent,
    ItemRetrieved,
    Push,
    Reconnect,
    ReportError,
    ReportUsage,
    Send,
    StartCalls,
    StartMetrics,
    StopProcessing,
    StopTTFB,
)
from ._realtime_connection import RealtimeAuthError, RealtimeLink
from ._realtime_core import RealtimeCore, check_video_frame_detail
from ._realtime_images import as_jpeg
from ._realtime_settings import RealtimeSettings

logger = logging.getLogger("voxloop.services.realtime")


class OpenAIRealtimeService(FunctionCallingService):
    """OpenAI Realtime (GA) as one pipeline service; see the module docstring.

    Args:
        api_key: default ``OPENAI_API_KEY``. base_url: default ``OPENAI_BASE_URL`` (any compatible server).
        settings: :class:`RealtimeSettings` (changed later with ``LLMUpdateSettingsFrame``).
        context: the conversation (the same object as the aggregators'), so the system prompt and
            history reach the server before the first turn; else the first ``LLMContextFrame`` brings it.
        video_frame_detail: ``"auto"``, ``"low"`` or ``"high"`` for camera images (``InputImageRawFrame``:
            JPEG as it is, raw RGB/RGBA encoded to JPEG with PyAV), sent as ``input_image`` items.
        video_interval_secs: at most one image per this many seconds.
        start_audio_paused, start_video_paused: send no user audio (images) until
            :meth:`set_audio_input_paused` (:meth:`set_video_input_paused`) resumes it.
        transcript_lead_ms: how far ahead of playback the output transport sends audio
            (``TransportParams.audio_out_lead_ms``), so text is released when its audio plays.
        reconnect_attempts: tries after a lost connection before a fatal error.

    Events: ``on_connected()``, ``on_connection_lost()``, ``on_conversation_item_created(item_id,
    item)`` and ``on_conversation_item_updated(item_id, item)`` (the server's ``conversation.item.added``
    and ``.done``; ``item`` is the SDK's model).
    """

    Settings = RealtimeSettings

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        settings: RealtimeSettings | None = None,
        context: Any = None,
        video_frame_detail: str = "auto",
        video_interval_secs: float = 1.0,
        start_audio_paused: bool = False,
        start_video_paused: bool = False,
        transcript_lead_ms: int = 100,
        reconnect_attempts: int = 3,
        run_in_parallel: bool = True,
        function_call_timeout_secs: float | None = None,
        name: str | None = None,
    ) -> None:
        self.realtime_settings = settings or RealtimeSettings()
        super().__init__(
            model=self.realtime_settings.model,
            max_tokens=self.realtime_settings.max_output_tokens,
            temperature=self.realtime_settings.temperature,
            run_in_parallel=run_in_parallel,
            function_call_timeout_secs=function_call_timeout_secs,
            name=name,
            queued=False,  # handling a frame only sends events: it never waits long
        )
        self.reconnect_attempts = reconnect_attempts
        self._core = RealtimeCore(
            self.realtime_settings,
            name=self.name,
            context=context,
            video_frame_detail=video_frame_detail,
            video_interval_secs=video_interval_secs,
            transcript_lead_ms=transcript_lead_ms,
        )
        self._core.audio_paused = start_audio_paused
        self._core.video_paused = start_video_paused
        self._retrievals: dict[str, list[asyncio.Future[Any]]] = {}
        self._link = RealtimeLink(
            name=self.name,
            api_key=api_key if api_key is not None else os.environ.get("OPENAI_API_KEY"),
            base_url=base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL"),
            model=lambda: self.realtime_settings.model,
            attempts=lambda: self.reconnect_attempts,
            clock=lambda: self.clock,
            on_event=self._on_server_event,
            on_gone=self._on_connection_gone,
            on_lost=self._on_connection_lost,
            on_fatal=self._fatal,
        )
        self._configured = asyncio.Event()  # the server confirmed the session (session.updated)
        self._register_event_handler("on_connected")
        self._register_event_handler("on_connection_lost")
        self._register_event_handler("on_conversation_item_created")
        self._register_event_handler("on_conversation_item_updated")

    # -- public API ---------------------------------------------------------------------------------

    @property
    def context(self) -> Any:
        return self._core.context

    @property
    def connected(self) -> bool:
        return self._core.ready

    async def wait_until_ready(self, timeout: float | None = None) -> None:
        """Wait until the server confirmed the session (for apps that must not lose the first audio)."""
        async with asyncio.timeout(timeout):
            await self._configured.wait()

    def set_audio_input_paused(self, paused: bool) -> None:
        """Stop (or resume) sending the user's audio to the server."""
        self._core.audio_paused = paused

    def set_video_input_paused(self, paused: bool) -> None:
        """Stop (or resume) sending camera images to the server."""
        self._core.video_paused = paused

    def set_video_frame_detail(self, detail: str) -> None:
        """The detail of images sent from now on: ``"auto"``, ``"low"`` or ``"high"`` (else ValueError)."""
        self._core.video_frame_detail = check_video_frame_detail(detail)

    async def retrieve_conversation_item(self, item_id: str, timeout: float | None = 10.0) -> Any:
        """The server's copy of a conversation item (with its audio), as the SDK's model.

        Raises ``LookupError`` when the server has no such item or the connection is gone.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._retrievals.setdefault(item_id, []).append(future)
        try:
            await self._run(self._core.retrieve_item(item_id))
            async with asyncio.timeout(timeout):
                return await future
        finally:
            waiting = self._retrievals.get(item_id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._retrievals[item_id]

    async def send_client_event(self, event: dict[str, Any]) -> None:
        """Send a client event of your own (a ``RealtimeClientEventParam`` dict) on the connection."""
        await self._run(self._core.client_event(event))

    async def reset_conversation(self) -> None:
        """Start a fresh server conversation from the context (reconnects; the context is replayed)."""
        await self._run(self._core.restart_conversation())

    async def apply_settings(self, changes: dict[str, Any]) -> None:
        """Change settings now (what ``LLMUpdateSettingsFrame`` does): all of ``changes`` or, when one is
        invalid (``ValueError``), none. The session is updated at once; a new model reconnects."""
        changed = self.realtime_settings.update(changes)
        if not changed:
            return
        self.settings.model = self.realtime_settings.model
        self.settings.max_tokens = self.realtime_settings.max_output_tokens
        self.set_metrics_model(self.realtime_settings.model)
        await self._run(self._core.settings_changed(changed))

    def update_settings(self, changes: dict[str, Any]) -> None:
        """Not for a live session: a change must reach the server (``session.update``), which takes an
        ``await``. Push an ``LLMUpdateSettingsFrame`` or ``await apply_settings(changes)`` instead."""
        raise TypeError(
            f"{self.name}: use `await apply_settings(...)` or an LLMUpdateSettingsFrame to change the "
            "settings of a Realtime session"
        )

    # -- frames ---------------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        core = self._core
        if isinstance(frame, InputAudioRawFrame):
            await self._run(core.user_audio(frame.audio, frame.sample_rate, frame.num_channels))
            await self.push_frame(frame, direction)
        elif isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._link.start()
        elif isinstance(frame, LLMContextFrame):
            await self._run(core.context_changed(frame.context, downstream=direction is DOWNSTREAM))
        elif isinstance(frame, InterruptionFrame):
            await self._run(core.interrupt(self.clock.now_ns(), cancel=True))
            await self.push_frame(frame, direction)
        elif isinstance(frame, VADUserStartedSpeakingFrame) and direction is DOWNSTREAM:
            await self.push_frame(frame, direction)
            await self._run(core.user_speech_started())
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and direction is DOWNSTREAM:
            await self.push_frame(frame, direction)
            await self._run(core.user_speech_stopped())
        elif isinstance(frame, UserStartedSpeakingFrame):
            await self._run(core.user_turn_started())
            await self.push_frame(frame, direction)
        elif isinstance(frame, UserStoppedSpeakingFrame):
            actions = core.user_turn_stopped()
            await self.push_frame(frame, direction)
            await self._run(actions)
        elif isinstance(frame, BotStartedSpeakingFrame | BotStoppedSpeakingFrame):
            core.bot_speaking(isinstance(frame, BotStartedSpeakingFrame))
            await self.push_frame(frame, direction)
        elif isinstance(frame, InputImageRawFrame):
            await self._send_image(frame)
            await self.push_frame(frame, direction)
        elif isinstance(frame, FunctionCallResultFrame) and direction is DOWNSTREAM:
            if self._functions.accept_result_frame(frame):
                await self.push_frame(frame, direction)
        elif isinstance(frame, LLMUpdateSettingsFrame):
            if frame.service is None or frame.service is self:
                try:
                    await self.apply_settings(frame.settings)
                except (ValueError, TypeError) as exc:
                    await self.push_error(f"{self.name}: {exc}", exc)
            if frame.service is not self:
                await self.push_frame(frame, direction)
        elif isinstance(frame, LLMSetToolsFrame):
            await self._run(core.tools_set(frame.tools))
            await self.push_frame(frame, direction)
        elif isinstance(frame, LLMConfigureOutputFrame):
            self._skip_tts = core.skip_tts = frame.skip_tts
            await self.push_frame(frame, direction)
        elif isinstance(frame, EndFrame | CancelFrame):
            await self.push_frame(frame, direction)
            await self._link.shutdown()
        else:
            await self.push_frame(frame, direction)

    async def _send_image(self, frame: InputImageRawFrame) -> None:
        if not self._core.image_due(self.clock.now_ns()):
            return
        # Raw pixels are encoded off the event loop (a few ms for a camera frame).
        jpeg = await asyncio.to_thread(as_jpeg, frame.image, frame.size, frame.format)
        if jpeg is not None:
            await self._run(self._core.user_image(jpeg))

    # -- the connection -------------------------------------------------------------------------------

    async def _on_server_event(self, event: RealtimeServerEvent) -> None:
        await self._run(self._core.server_event(event, self.clock.now_ns()))

    async def _on_connection_gone(self, resume: bool) -> None:
        """Whatever the old connection was doing is over; it will be restored on the next one."""
        self._configured.clear()
        await self._run(self._core.connection_gone(resume=resume))

    async def _on_connection_lost(self) -> None:
        await self._call_event_handler("on_connection_lost")

    async def cleanup(self) -> None:
        await self._link.shutdown()
        for waiting in self._retrievals.values():
            for future in waiting:
                future.cancel()
        await super().cleanup()

    async def _fatal(self, message: str, exc: BaseException | None, category: ErrorCategory) -> None:
        logger.error("%s", message)
        error = ErrorFrame(error=message, fatal=True, processor=self, exception=exc, category=category)
        await self._call_event_handler("on_error", error)
        await self.push_frame(error, UPSTREAM)

    # -- the core's actions ---------------------------------------------------------------------------

    async def _run(self, actions: list[Action]) -> None:
        """Carry out what the core asked for, in order."""
        for action in actions:
            if isinstance(action, Send):
                await self._link.send(action.event, action.what)
            elif isinstance(action, Push):
                await self.push_frame(action.frame, action.direction)
            elif isinstance(action, AudioLeaving):
                self._core.audio_leaving(action, self.clock.now_ns())
            elif isinstance(action, StartMetrics):
                await self.start_ttfb_metrics()
                await self.start_processing_metrics()
            elif isinstance(action, StopTTFB):
                await self.stop_ttfb_metrics()
            elif isinstance(action, StopProcessing):
                await self.stop_processing_metrics()
            elif isinstance(action, ReportUsage):
                await self.start_llm_usage_metrics(action.usage)
            elif isinstance(action, ReportError):
                error = ErrorFrame(
                    error=f"{self.name}: {action.message}", processor=self, category=action.category
                )
                await self._call_event_handler("on_error", error)
                await self.push_frame(error, UPSTREAM)
            elif isinstance(action, StartCalls):
                await self._functions.start_calls(action.calls, self._core.context)
            elif isinstance(action, InterruptCalls):
                await self._functions.interrupt()
            elif isinstance(action, BroadcastInterruption):
                await self.broadcast_interruption()
            elif isinstance(action, Connected):
                await self._call_event_handler("on_connected")
            elif isinstance(action, Configured):
                self._configured.set()
            elif isinstance(action, Reconnect):
                self._configured.clear()
                await self._link.reconnect()
            elif isinstance(action, ItemRetrieved):
                self._retrieved(action)
            elif isinstance(action, ItemEvent):
                await self._call_event_handler(action.event, action.item_id, action.item)
            elif isinstance(action, AuthRefused):
                raise RealtimeAuthError(action.message)

    def _retrieved(self, answer: ItemRetrieved) -> None:
        for future in self._retrievals.pop(answer.item_id, []):
            if future.done():
                continue
            if answer.error is not None:
                future.set_exception(LookupError(f"item {answer.item_id}: {answer.error}"))
            else:
                future.set_result(answer.item)


__all__ = ["OpenAIRealtimeService", "RealtimeAuthError"]
