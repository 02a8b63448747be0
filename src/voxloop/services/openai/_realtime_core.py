"""The Realtime service without I/O: events in, actions out.

:class:`RealtimeCore` holds the state of one Realtime session (the response, the user's turn, the
played audio, the conversation mirror) in small state objects, and is driven by two kinds of input:

- what the pipeline tells the service (audio, images, the context, turn and bot-speaking frames, an
  interruption, new settings): one method each;
- what the server sends: :meth:`RealtimeCore.server_event` with the SDK's ``openai.types.realtime``
  model, dispatched through the table in :mod:`._realtime_events`.

Every input returns the list of :mod:`._realtime_actions` to carry out, in order (send a client event,
push a frame, run function calls, metrics...). Nothing here awaits, so the service shell
(:mod:`.realtime`) is the only place that touches the connection or the pipeline, and the core can be
driven in a unit test with plain calls. Inputs that need the time take it (``now_ns``, the pipeline
clock's).
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from openai.types.realtime import RealtimeServerEvent

from ...frames import (
    AggregatedTextProgressFrame,
    AggregationType,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from ._realtime_actions import (
    Action,
    AudioLeaving,
    Call,
    InterruptCalls,
    ItemRetrieved,
    Outbox,
    Push,
    Reconnect,
    StartCalls,
    StartMetrics,
)
from ._realtime_audio import InputAudio, PlayedAudio, TranscriptPacer
from ._realtime_conversation import RETRIEVE_PREFIX, ConversationSync, ItemRetrievals, awaits_reply
from ._realtime_events import dispatch
from ._realtime_responses import Request, Response, ResponseRequests
from ._realtime_settings import RealtimeSettings, tools_param
from ._realtime_turn import ImageThrottle, InputTranscripts, PendingCalls, TurnState

logger = logging.getLogger("voxloop.services.realtime")

VIDEO_FRAME_DETAILS = ("auto", "low", "high")
CANCELLED = "CANCELLED"  # the output of a call an interruption overtook (the server needs every answer)
_SENTENCE_END = (".", "!", "?", "。")


class RealtimeCore:
    """The state of one Realtime session and what to do on each event (see the module docstring).

    ``settings`` is shared with the service (it applies changes, then calls :meth:`settings_changed`);
    ``context`` is the conversation (an ``LLMContext``), None until the first one arrives.
    """

    def __init__(
        self,
        settings: RealtimeSettings,
        *,
        name: str,
        context: Any = None,
        video_frame_detail: str = "auto",
        video_interval_secs: float = 1.0,
        transcript_lead_ms: int = 100,
    ) -> None:
        self.name = name
        self.settings = settings
        self.context: Any = context
        self.video_frame_detail = check_video_frame_detail(video_frame_detail)
        self.audio_paused = False  # the user's audio is not sent (set_audio_input_paused)
        self.video_paused = False  # nor camera images
        self.skip_tts: bool | None = None  # LLMConfigureOutputFrame: responses in text only
        self.ready = False  # connected and the session configured by us: events may be sent
        self.connected_once = False
        self.measuring = False  # TTFB and processing time are running
        self.now_ns = 0  # the time of the input being handled
        self.mirror = ConversationSync()
        self.input = InputAudio()
        self.played = PlayedAudio()
        self.pacer = TranscriptPacer(lead_ms=transcript_lead_ms)
        self.responses = ResponseRequests()
        self.turn = TurnState()
        self.transcripts = InputTranscripts()
        self.pending_calls = PendingCalls()
        self.images = ImageThrottle(video_interval_secs)
        self.outbox = Outbox()
        self.retrievals = ItemRetrievals()
        self._actions: list[Action] = []

    def __str__(self) -> str:
        return self.name

    # -- inputs: the server -----------------------------------------------------------------------

    def server_event(self, event: RealtimeServerEvent, now_ns: int) -> list[Action]:
        self.now_ns = now_ns
        dispatch(self, event)
        return self._take()

    def audio_leaving(self, audio: AudioLeaving, now_ns: int) -> None:
        """The shell is pushing the bot's audio now (see :class:`AudioLeaving`): where playback is."""
        self.played.received(audio.item_id, audio.content_index, audio.nbytes, now_ns)

    def connection_gone(self, *, resume: bool) -> list[Action]:
        """The connection ended; ``resume``: it was lost (not closed by us), so a response it cut off is
        asked for again once reconnected."""
        self.ready = False
        self.input = InputAudio()
        for item_id in self.retrievals.take_all():
            self.emit(ItemRetrieved(item_id, error="the connection was lost"))
        response = self.responses.connection_lost(resume=resume)
        if response is not None and not response.closed:
            self.close_response(response)
        return self._take()

    def restart_conversation(self) -> list[Action]:
        """A fresh server conversation: nothing more goes to this one; the context is replayed."""
        self.ready = False
        self.emit(Reconnect())
        return self._take()

    # -- inputs: the pipeline ---------------------------------------------------------------------

    def user_audio(self, audio: bytes, sample_rate: int, num_channels: int) -> list[Action]:
        if not self.ready or self.audio_paused:
            return self._take()
        if batch := self.input.add(audio, sample_rate, num_channels):
            self._append(batch)
        return self._take()

    def user_speech_started(self) -> list[Action]:
        """Our VAD heard speech; with manual turns, older audio leaves the buffer (the pre-roll stays)."""
        if self.ready and not self.settings.server_turns:
            self.input.drop_pending()
            self.send("clear", "input_audio_buffer.clear")
            if preroll := self.input.preroll():
                self._append(preroll)
        return self._take()

    def user_speech_stopped(self) -> list[Action]:
        """Our VAD heard the speech end; with manual turns, the buffered audio is the user's turn."""
        if self.ready and not self.settings.server_turns:
            if batch := self.input.flush():
                self._append(batch)
            self.send("commit", "input_audio_buffer.commit")
            self.start_measuring()
        return self._take()

    def user_turn_started(self) -> list[Action]:
        self.turn.user_turn_open = True
        return self._take()

    def user_turn_stopped(self) -> list[Action]:
        """The user aggregator wrote the turn: answer it (manual responses), start the calls that waited."""
        self.turn.user_turn_open = False
        if self.turn.unanswered_audio and not self.settings.server_creates_responses:
            self.request_response()
        if calls := self.pending_calls.take():
            self.emit(StartCalls(calls))
        return self._take()

    def bot_speaking(self, speaking: bool) -> None:
        self.turn.bot_speaking = speaking

    def image_due(self, now_ns: int) -> bool:
        """Whether a camera image should be sent now (at most one per ``video_interval_secs``)."""
        return self.ready and not self.video_paused and self.images.due(now_ns)

    def user_image(self, jpeg: bytes) -> list[Action]:
        if self.ready:
            url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
            part = {"type": "input_image", "image_url": url, "detail": self.video_frame_detail}
            self.send("image", "conversation.item.create", item=_user_message([part]))
        return self._take()

    def interrupt(self, now_ns: int, *, cancel: bool) -> list[Action]:
        """The user cut in: stop the bot (``cancel``: the response too, else the server did), cancel the
        calls that say so, and answer the calls still waiting for the user's turn as cancelled."""
        self.now_ns = now_ns
        self.cut_in(cancel=cancel)
        return self._take()

    def context_changed(self, context: Any, *, downstream: bool) -> list[Action]:
        """A context frame (``downstream``: from the user's side, not the assistant aggregator's)."""
        self.context = context
        if not self.ready:
            self.responses.on_ready = True  # the session is being set up: sync and respond once it is
        elif self.mirror.rewritten(context.messages):
            # Replaced wholesale (LLMMessagesUpdateFrame, a summary): appending it would repeat the
            # history on the server. A fresh server conversation gets the context as it now is.
            logger.info("%s: the context was rewritten; restarting the server conversation", self)
            self.responses.on_ready = self.responses.on_ready or awaits_reply(context.messages)
            self.ready = False
            self.emit(Reconnect())
        else:
            self._sync_context(downstream=downstream)
        return self._take()

    def tools_set(self, tools: Any) -> list[Action]:
        """New tools (``LLMSetToolsFrame``): into the context, and to the server now, not at the next turn."""
        if self.context is not None:
            if self.context.tools is not tools:
                self.context.set_tools(tools)
            if self.ready and self._tools_changed():
                self.send_session_update()
        return self._take()

    def retrieve_item(self, item_id: str) -> list[Action]:
        """Ask the server for an item as it holds it (``conversation.item.retrieve``); the answer comes
        as an :class:`ItemRetrieved` action."""
        if not self.ready:
            return [ItemRetrieved(item_id, error="not connected")]
        if self.retrievals.ask(item_id):
            self.send(
                "retrieve", "conversation.item.retrieve", event_id=RETRIEVE_PREFIX + item_id, item_id=item_id
            )
        return self._take()

    def client_event(self, event: dict[str, Any]) -> list[Action]:
        """An app's own client event, sent as it is (given an ``event_id`` if it has none)."""
        event_type = event.get("type")
        if not isinstance(event_type, str) or not event_type:
            raise ValueError("a client event needs a 'type'")
        fields = {k: v for k, v in event.items() if k not in ("type", "event_id")}
        self.send(event_type, event_type, event_id=event.get("event_id"), **fields)
        return self._take()

    def settings_changed(self, changed: set[str]) -> list[Action]:
        """``settings`` were changed (the names in ``changed``): reach the server."""
        if "instructions" in changed:
            self._write_instructions_into_context(self.settings.instructions)
        if "model" in changed:
            self.ready = False  # the model is fixed per connection
            self.emit(Reconnect())
        elif self.ready:
            self.send_session_update()
        return self._take()

    # -- what the event handlers share --------------------------------------------------------------

    def emit(self, action: Action) -> None:
        self._actions.append(action)

    def push(self, action: Push) -> None:
        self._actions.append(action)

    def send(self, what: str, event_type: str, **fields: Any) -> None:
        self._actions.append(self.outbox.event(what, event_type, **fields))

    def start_measuring(self) -> None:
        self.measuring = True
        self.emit(StartMetrics())

    def request_response(self) -> None:
        """Ask for one response; while one is active, once it is done (requests coalesce)."""
        self.turn.answered()
        if self.responses.request(ready=self.ready) is not Request.SEND:
            return
        if not self.measuring:
            self.start_measuring()
        response: dict[str, Any] = {}
        if self.skip_tts:
            response["output_modalities"] = ["text"]
        self.send("response.create", "response.create", response=response)

    def open_response(self, response_id: str) -> None:
        self.responses.opened(response_id)
        self.turn.answered()
        self.push(Push(LLMFullResponseStartFrame()))

    def close_response(self, response: Response) -> None:
        response.closed = True
        if response.audio_started:
            self.push(Push(TTSStoppedFrame(context_id=response.id)))
        self.push(Push(LLMFullResponseEndFrame()))

    def push_spoken(self, response: Response, text: str) -> None:
        """A piece of the transcript whose audio starts playing: context text and bot-output progress."""
        segment = response.start_sentence_if_new()
        frame = TTSTextFrame(text, aggregated_by=AggregationType.WORD, context_id=response.id)
        frame.will_be_spoken = True
        frame.includes_inter_frame_spaces = True
        self.push(Push(frame))
        response.sentence += text
        sentence = response.sentence.strip()
        progress = AggregatedTextProgressFrame(
            segment_id=hash((response.id, segment)) & 0x7FFFFFFF,
            text=text.strip(),
            accumulated_text=sentence,
            remaining_text="",
            aggregated_by=AggregationType.SENTENCE,
            context_id=response.id,
        )
        self.push(Push(progress))
        if sentence.endswith(_SENTENCE_END):
            response.sentence = ""

    def run_calls(self, response: Response) -> None:
        """The calls of a finished response: start them (after the user's turn is written, if it is
        still open), or answer them cancelled if the user cut in."""
        calls = [(call_id, name, arguments) for call_id, (name, arguments) in response.calls.items()]
        if response.interrupted:
            self._answer_cancelled(calls)
        elif self.turn.user_turn_open:
            self.pending_calls.defer(calls)
        else:
            self.emit(StartCalls(calls))

    def cut_in(self, *, cancel: bool) -> None:
        self.emit(InterruptCalls())
        self._answer_cancelled(self.pending_calls.take())
        self._stop_output(cancel=cancel)

    def send_session_update(self) -> None:
        instructions = self._instructions()
        tools = tools_param(getattr(self.context, "tools", None))
        tool_choice = getattr(self.context, "tool_choice", None)
        session = self.settings.session_param(instructions=instructions, tools=tools)
        if tool_choice is not None and self.settings.tool_choice is None:
            session["tool_choice"] = tool_choice
        self.send("session.update", "session.update", session=session)
        self.mirror.session_synced(instructions, tools)

    def replay_context(self) -> None:
        """A new connection: configure the session and send the whole conversation."""
        self.mirror.reset()
        self.send_session_update()
        if self.context is None:
            return
        plan = self.mirror.plan(self.context.messages, replay=True)
        for item in plan.items:
            self.send("item", "conversation.item.create", item=item)
        if plan.items:
            logger.info("%s: conversation restored (%d items)", self, len(plan.items))

    # -- internals ----------------------------------------------------------------------------------

    def _take(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    def _append(self, pcm: bytes) -> None:
        self.send("append", "input_audio_buffer.append", audio=base64.b64encode(pcm).decode("ascii"))

    def _answer_cancelled(self, calls: list[Call]) -> None:
        for call_id, _name, _arguments in calls:
            item = {"type": "function_call_output", "call_id": call_id, "output": CANCELLED}
            self.send("item", "conversation.item.create", item=item)

    def _stop_output(self, *, cancel: bool) -> None:
        """Stop the bot now: cancel the active response, truncate what was not heard, drop the rest."""
        now = self.now_ns
        response = self.responses.current
        if response is not None and response.active and not response.interrupted:
            response.interrupted = True
            if cancel:
                self.send("response.cancel", "response.cancel")
        item = self.played.item
        if item is not None and not item.truncated and self.played.unplayed(now):
            item.truncated = True
            end_ms = self.played.played_ms(now)
            logger.debug("%s: truncating %s at %d ms", self, item.item_id, end_ms)
            self.send(
                "truncate",
                "conversation.item.truncate",
                item_id=item.item_id,
                content_index=item.content_index,
                audio_end_ms=end_ms,
            )
        self.played.stop(now)
        self.pacer.clear()
        self.measuring = False
        if response is not None and not response.closed:
            self.close_response(response)

    def _sync_context(self, *, downstream: bool) -> None:
        messages = self.context.messages
        plan = self.mirror.plan(messages)
        if plan.instructions is not None or self._tools_changed():
            self.send_session_update()
        for item in plan.items:
            self.send("item", "conversation.item.create", item=item)
        wants = (
            plan.new_input
            or plan.outputs > 0
            or (self.turn.unanswered_audio and not self.settings.server_creates_responses)
            or (not plan.items and downstream and not self.turn.responded_since_input)
        )
        if wants:
            self.request_response()

    def _tools_changed(self) -> bool:
        return tools_param(getattr(self.context, "tools", None)) != self.mirror.tools_sent

    def _instructions(self) -> str | None:
        system = getattr(self.context, "system_message", None)
        return system if isinstance(system, str) else self.settings.instructions

    def _write_instructions_into_context(self, instructions: str | None) -> None:
        messages = getattr(self.context, "messages", None)
        if messages is None or instructions is None:
            return
        if messages and messages[0].get("role") in ("system", "developer"):
            messages[0]["content"] = instructions
        else:
            messages.insert(0, {"role": "system", "content": instructions})


def check_video_frame_detail(detail: str) -> str:
    if detail not in VIDEO_FRAME_DETAILS:
        choices = ", ".join(VIDEO_FRAME_DETAILS)
        raise ValueError(f"video_frame_detail must be one of {choices}, not {detail!r}")
    return detail


def _user_message(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": content}
