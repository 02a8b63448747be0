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
``function_call_output`` items followed by exactly one ``response.create`` (:mod:`._realtime_calls`).

The parts, each a module of functions of the service: ``_realtime_connection`` (connect, receive,
reconnect), ``_realtime_events`` (one handler per server event), ``_realtime_responses`` (asking for,
opening, closing and interrupting responses), ``_realtime_calls``, ``_realtime_input`` (audio and camera
images in), ``_realtime_conversation`` and ``_realtime_settings``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import reduce
from typing import Any

from openai import AsyncOpenAI

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
    LLMTextFrame,
    LLMUpdateSettingsFrame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from ...pipeline import DOWNSTREAM, UPSTREAM, FrameDirection
from ..llm import FunctionCallingService
from ._realtime_audio import InputAudio, PlayedAudio, TranscriptPacer
from ._realtime_calls import Call, cancel_deferred_calls, run_deferred_calls
from ._realtime_connection import RealtimeAuthError, close_quietly, keep_connected
from ._realtime_conversation import ConversationSync, awaits_reply
from ._realtime_input import commit_input, restart_input_buffer, user_audio, user_image
from ._realtime_responses import Response, close_response, request_response, stop_output
from ._realtime_settings import RealtimeSettings, tools_param

logger = logging.getLogger("voxloop.services.realtime")

_SENT_MEMORY = 128


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
        transcript_lead_ms: how far ahead of playback the output transport sends audio
            (``TransportParams.audio_out_lead_ms``), so text is released when its audio plays.
        reconnect_attempts: tries after a lost connection before a fatal error.
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
            queued=False,
        )
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._base_url = base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL")
        self._context: Any = context
        self.video_frame_detail = video_frame_detail
        self.video_interval_secs = video_interval_secs
        self.reconnect_attempts = reconnect_attempts
        self._client: AsyncOpenAI | None = None
        self._conn: Any = None
        self._connection_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()  # connected and session.update sent: events may be sent
        self._configured = asyncio.Event()  # the server confirmed the session (session.updated)
        self._closing = False
        self._reconnect_now = False
        self._connected_once = False
        self._sync = ConversationSync()
        self._tools_sent: list[dict[str, Any]] | None = None
        self._input = InputAudio()
        self._played = PlayedAudio()
        self._pacer = TranscriptPacer(lead_ms=transcript_lead_ms)
        self._response: Response | None = None
        self._create_in_flight = False
        self._create_pending = False
        self._create_on_ready = False
        self._create_retried = False
        self._responded_since_input = False
        self._unanswered_audio = False
        self._measuring = False
        self._bot_speaking = False
        self._user_turn_open = False  # between the user aggregator's UserStarted/StoppedSpeaking frames
        self._deferred_calls: list[Call] = []
        self._last_image_ns: int | None = None
        self._transcripts: dict[str, str] = {}  # input item id -> transcription so far
        self._sent: dict[str, str] = {}  # event id -> what it was (for error reports)
        self._event_ids = 0
        self._register_event_handler("on_connected")
        self._register_event_handler("on_connection_lost")

    # -- public API ---------------------------------------------------------------------------------

    @property
    def context(self) -> Any:
        return self._context

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def wait_until_ready(self, timeout: float | None = None) -> None:
        """Wait until the server confirmed the session (for apps that must not lose the first audio)."""
        async with asyncio.timeout(timeout):
            await self._configured.wait()

    async def reset_conversation(self) -> None:
        """Start a fresh server conversation from the context (reconnects; the context is replayed)."""
        self._reconnect_now = True
        self._ready.clear()  # nothing more goes to the old conversation
        self._configured.clear()
        await self._close_connection()

    async def apply_settings(self, changes: dict[str, Any]) -> None:
        """Change settings now (what ``LLMUpdateSettingsFrame`` does): all of ``changes`` or, when one is
        invalid (``ValueError``), none. The session is updated at once; a new model reconnects."""
        changed = self.realtime_settings.update(changes)
        if not changed:
            return
        self.settings.model = self.realtime_settings.model
        self.settings.max_tokens = self.realtime_settings.max_output_tokens
        self.set_metrics_model(self.realtime_settings.model)
        if "instructions" in changed:
            self._write_instructions_into_context(self.realtime_settings.instructions)
        if "model" in changed:
            await self.reset_conversation()
        elif self._ready.is_set():
            await self._send_session_update()

    def update_settings(self, changes: dict[str, Any]) -> None:
        """Not for a live session: a change must reach the server (``session.update``), which takes an
        ``await``. Push an ``LLMUpdateSettingsFrame`` or ``await apply_settings(changes)`` instead."""
        raise TypeError(
            f"{self.name}: use `await apply_settings(...)` or an LLMUpdateSettingsFrame to change the "
            "settings of a Realtime session"
        )

    # -- frames ---------------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            await user_audio(self, frame)
            await self.push_frame(frame, direction)
        elif isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._start_connection()
        elif isinstance(frame, LLMContextFrame):
            await self._on_context(frame.context, direction)
        elif isinstance(frame, InterruptionFrame):
            await self._cut_in(cancel=True)
            await self.push_frame(frame, direction)
        elif isinstance(frame, VADUserStartedSpeakingFrame) and direction is DOWNSTREAM:
            await self.push_frame(frame, direction)
            if not self.realtime_settings.server_turns:
                await restart_input_buffer(self)
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and direction is DOWNSTREAM:
            await self.push_frame(frame, direction)
            if not self.realtime_settings.server_turns:
                await commit_input(self)
        elif isinstance(frame, UserStartedSpeakingFrame):
            self._user_turn_open = True
            await self.push_frame(frame, direction)
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._user_turn_open = False
            await self.push_frame(frame, direction)
            if self._unanswered_audio and not self.realtime_settings.server_creates_responses:
                await request_response(self)
            await run_deferred_calls(self)
        elif isinstance(frame, BotStartedSpeakingFrame | BotStoppedSpeakingFrame):
            self._bot_speaking = isinstance(frame, BotStartedSpeakingFrame)
            await self.push_frame(frame, direction)
        elif isinstance(frame, InputImageRawFrame):
            await user_image(self, frame)
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
        elif isinstance(frame, LLMConfigureOutputFrame):
            self._skip_tts = frame.skip_tts
            await self.push_frame(frame, direction)
        elif isinstance(frame, EndFrame | CancelFrame):
            await self.push_frame(frame, direction)
            await self._shutdown()
        else:
            await self.push_frame(frame, direction)

    async def _push_text(self, text: str) -> None:
        """Model text in text modality: what the context keeps, and the client's bot-llm-text."""
        frame = LLMTextFrame(text)
        await self.push_frame(frame)

    # -- context --------------------------------------------------------------------------------------

    def _instructions(self) -> str | None:
        system = getattr(self._context, "system_message", None)
        return system if system is not None else self.realtime_settings.instructions

    def _write_instructions_into_context(self, instructions: str | None) -> None:
        messages = getattr(self._context, "messages", None)
        if messages is None or instructions is None:
            return
        if messages and messages[0].get("role") in ("system", "developer"):
            messages[0]["content"] = instructions
        else:
            messages.insert(0, {"role": "system", "content": instructions})

    async def _on_context(self, context: Any, direction: FrameDirection) -> None:
        if context is not self._context:
            self._context = context
        if not self._ready.is_set():
            self._create_on_ready = True  # the session is being set up: sync and respond once it is
            return
        if self._sync.rewritten(context.messages):
            # Replaced wholesale (LLMMessagesUpdateFrame, a summary): appending it would repeat the
            # history on the server. A fresh server conversation gets the context as it now is.
            logger.info("%s: the context was rewritten; restarting the server conversation", self)
            self._create_on_ready = self._create_on_ready or awaits_reply(context.messages)
            await self.reset_conversation()
            return
        plan = self._sync.plan(context.messages)
        if plan.instructions is not None or self._tools_changed():
            await self._send_session_update()
        for item in plan.items:
            await self._send("item", "conversation.item.create", item=item)
        wants = (
            plan.new_input
            or plan.outputs > 0
            or (self._unanswered_audio and not self.realtime_settings.server_creates_responses)
            or (not plan.items and direction is DOWNSTREAM and not self._responded_since_input)
        )
        if wants:
            await request_response(self)

    def _tools_changed(self) -> bool:
        return tools_param(getattr(self._context, "tools", None)) != self._tools_sent

    async def _send_session_update(self) -> None:
        instructions = self._instructions()
        tools = tools_param(getattr(self._context, "tools", None))
        tool_choice = getattr(self._context, "tool_choice", None)
        settings = self.realtime_settings
        session = settings.session_param(instructions=instructions, tools=tools)
        if tool_choice is not None and settings.tool_choice is None:
            session["tool_choice"] = tool_choice
        await self._send("session.update", "session.update", session=session)
        self._tools_sent = tools
        self._sync.instructions_synced(instructions)

    async def _replay_context(self) -> None:
        """A new connection: configure the session and send the whole conversation."""
        self._sync.reset()
        await self._send_session_update()
        if self._context is None:
            return
        plan = self._sync.plan(self._context.messages, replay=True)
        for item in plan.items:
            await self._send("item", "conversation.item.create", item=item)
        if plan.items:
            logger.info("%s: conversation restored (%d items)", self, len(plan.items))

    # -- interruptions ---------------------------------------------------------------------------------

    async def _cut_in(self, *, cancel: bool) -> None:
        """The user cut in: stop the bot (``cancel``: the response too), cancel the calls that say so,
        and answer the calls still waiting for the user's turn as cancelled."""
        await self._functions.interrupt()
        await cancel_deferred_calls(self)
        await stop_output(self, cancel=cancel)

    # -- the connection -------------------------------------------------------------------------------

    def _start_connection(self) -> None:
        if self._connection_task is None:
            task = asyncio.create_task(keep_connected(self), name=f"{self.name}::connection")
            self._connection_task = task

    async def _connection_gone(self) -> None:
        """Whatever the old connection was doing is over; it will be restored on the next one."""
        self._input = InputAudio()
        self._create_in_flight = False
        response = self._response
        if response is not None and response.active:
            response.active = False
            if not response.interrupted and not self._closing and not self._reconnect_now:
                self._create_on_ready = True  # the answer was cut off: ask again once reconnected
            if not response.closed:
                await close_response(self, response)

    async def _close_connection(self) -> None:
        conn = self._conn
        if conn is not None:
            await close_quietly(conn)

    async def _shutdown(self) -> None:
        self._closing = True
        await self._close_connection()
        task, self._connection_task = self._connection_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def cleanup(self) -> None:
        await self._shutdown()
        await super().cleanup()

    async def _fatal(self, message: str, exc: BaseException | None, category: ErrorCategory) -> None:
        logger.error("%s", message)
        self._closing = True
        error = ErrorFrame(error=message, fatal=True, processor=self, exception=exc, category=category)
        await self._call_event_handler("on_error", error)
        await self.push_frame(error, UPSTREAM)

    async def _send(self, what: str, method: str, **kwargs: Any) -> None:
        """Send one client event with the connection's ``method`` (a dotted path such as
        ``"conversation.item.create"``); dropped, with a log line, when there is no connection."""
        conn = self._conn
        if conn is None:
            logger.debug("%s: not connected, %s dropped", self, what)
            return
        self._event_ids += 1
        event_id = f"vx_{what.replace('.', '_')}_{self._event_ids}"
        if what != "append":
            self._sent[event_id] = what
            if len(self._sent) > _SENT_MEMORY:
                self._sent.pop(next(iter(self._sent)))
        try:
            await reduce(getattr, method.split("."), conn)(event_id=event_id, **kwargs)
        except Exception as exc:  # the receive loop notices a lost connection and reconnects
            logger.warning("%s: sending %s failed: %r", self, what, exc)


__all__ = ["OpenAIRealtimeService", "RealtimeAuthError"]
