"""One emulated Realtime connection: the session, the conversation, the input audio buffer and its VAD.

Client events are handled strictly in arrival order by the connection's receive loop, each by its entry
in one dispatch table (``_CLIENT_EVENTS``: client event type -> handler); the input audio buffer's
state is an :class:`~._input_buffer.InputBuffer`, the session's defaults and merging live in
:mod:`._session_config`. A response runs
as a task of its own (so the client can cancel it or barge in); when the loop has to stop a response
(``response.cancel``, speech started with ``interrupt_response``) it waits for that response's
``response.done`` before handling the next client event, so the event order is deterministic.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from . import _conversation, _input_audio
from ._audio import SpokenWord, duration_ms
from ._conversation import Truncation
from ._input_buffer import InputBuffer
from ._items import ConversationItems
from ._responses import (
    ResponseRecord,
    ResponseRun,
    input_audio_tokens,
    new_id,
    text_tokens,
)
from ._session_config import default_session, merge_session
from ._validate import Problem, check_server_event, parse_client_event

if TYPE_CHECKING:
    from ._server import RealtimeEmulator


@dataclass
class ClientEventRecord:
    """A client event as received: its JSON (``data``, None if unparsable), the SDK model, any problem."""

    raw: str
    data: dict[str, Any] | None
    event: Any
    problem: Problem | None
    connection_id: str

    @property
    def type(self) -> str | None:
        return self.data.get("type") if self.data else None


@dataclass
class _ActiveResponse:
    record: ResponseRecord
    run: ResponseRun
    task: asyncio.Task[None]


@dataclass
class EmulatedConnection:
    emulator: RealtimeEmulator
    ws: ServerConnection
    model: str
    headers: dict[str, str]
    id: str = field(default_factory=lambda: new_id("conn"))
    conversation_id: str = field(default_factory=lambda: new_id("conv"))
    client_events: list[ClientEventRecord] = field(default_factory=list)
    server_events: list[dict[str, Any]] = field(default_factory=list)
    conversation: ConversationItems = field(default_factory=ConversationItems)
    truncations: list[Truncation] = field(default_factory=list)
    responses: list[ResponseRecord] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.session = default_session(self.model)
        self.input_buffer = InputBuffer()
        self._active: _ActiveResponse | None = None
        self._send_lock = asyncio.Lock()
        self._previous_input_tokens: dict[str, int] = {}
        self.input_buffer.configure(self.turn_detection())

    @property
    def items(self) -> list[dict[str, Any]]:
        """The conversation's items, in order."""
        return self.conversation.items

    @property
    def item_audio(self) -> dict[str, bytearray]:
        return self.conversation.audio

    @property
    def item_words(self) -> dict[str, list[SpokenWord]]:
        return self.conversation.words

    @property
    def responding(self) -> bool:
        """Whether a response is running."""
        return self._active is not None

    # -- sending and the receive loop ------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        """Validate against the SDK schema (a failure raises: an emulator bug), record, send."""
        event = {"event_id": new_id("event"), **event}
        check_server_event(event)
        async with self._send_lock:
            self.server_events.append(event)
            self.emulator._notify()
            await self.ws.send(_dumps(event))
        await self.emulator._after_send(self, event)

    async def error(
        self,
        message: str,
        code: str | None,
        param: str | None = None,
        event_id: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        await self.send(
            {
                "type": "error",
                "error": {
                    "type": type_,
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": event_id,
                },
            }
        )

    async def serve(self) -> None:
        await self.send({"type": "session.created", "session": copy.deepcopy(self.session)})
        try:
            async for raw in self.ws:
                await self._handle(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
        except ConnectionClosed:
            pass
        finally:
            await self.stop_response("client_cancelled", send=False)

    async def _handle(self, raw: str) -> None:
        event, data, problem = parse_client_event(raw)
        record = ClientEventRecord(raw, data, event, problem, self.id)
        self.client_events.append(record)
        self.emulator._notify()
        if problem is not None or data is None:
            if problem is not None:
                await self.error(problem.message, problem.code, problem.param, problem.event_id)
            return
        # Validation admits only the SDK's client event types, and the table has every one of them.
        await _CLIENT_EVENTS[data["type"]](self, data, data.get("event_id"))

    # -- session --------------------------------------------------------------------------------------------

    async def on_session_update(self, data: dict[str, Any], event_id: str | None) -> None:
        update = data["session"]
        if update.get("type") != self.session["type"]:
            await self.error(
                f"Cannot change the session type from '{self.session['type']}' to '{update.get('type')}'.",
                "invalid_value",
                "session.type",
                event_id,
            )
            return
        self.session = merge_session(self.session, update)
        self.input_buffer.configure(self.turn_detection())
        await self.send({"type": "session.updated", "session": copy.deepcopy(self.session)})

    def turn_detection(self) -> dict[str, Any] | None:
        td = self.session["audio"]["input"].get("turn_detection")
        return td if isinstance(td, dict) else None

    # -- conversation ---------------------------------------------------------------------------------------

    def find_item(self, item_id: str) -> dict[str, Any] | None:
        return self.conversation.find(item_id)

    async def add_item(
        self, item: dict[str, Any], *, announce_done: bool = True, previous_item_id: str | None = None
    ) -> None:
        previous = self.conversation.insert(item, previous_item_id)
        await self.send(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        if announce_done:
            await self.send(
                {"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)}
            )

    async def finish_item(self, item: dict[str, Any]) -> None:
        previous = self.conversation.update(item)
        await self.send(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )

    # -- responses ------------------------------------------------------------------------------------------

    async def on_response_create(self, data: dict[str, Any], event_id: str | None) -> None:
        if self._active is not None:
            active_id = self._active.record.id
            await self.error(
                f"Conversation already has an active response in progress: {active_id}. Wait until "
                "the response is finished before creating a new response.",
                "conversation_already_has_active_response",
                None,
                event_id,
            )
            return
        await self.start_response(data.get("response") or {})

    async def on_response_cancel(self, data: dict[str, Any], event_id: str | None) -> None:
        wanted = data.get("response_id")
        if self._active is None or (wanted is not None and wanted != self._active.record.id):
            await self.error(
                "Cancellation failed: no active response found", "response_cancel_not_active", None, event_id
            )
            return
        await self.stop_response("client_cancelled")

    async def start_response(self, request: dict[str, Any] | None) -> None:
        request = request or {}
        record = ResponseRecord(
            id=new_id("resp"),
            connection_id=self.id,
            instructions=request.get("instructions", self.session.get("instructions")),
            output_modalities=list(request.get("output_modalities") or self.session["output_modalities"]),
            tools=list(request.get("tools", self.session.get("tools") or [])),
            out_of_band=request.get("conversation") == "none",
            request=request or None,
        )
        self.responses.append(record)
        run = ResponseRun(self, record, asyncio.Event())
        task = asyncio.create_task(self._run_response(run), name=f"realtime-emulator-{record.id}")
        self._active = _ActiveResponse(record, run, task)

    async def _run_response(self, run: ResponseRun) -> None:
        try:
            await run.run(self.emulator._next_reply)
        except ConnectionClosed:
            pass
        except Exception as exc:  # an emulator bug: surface it to the test, and end the connection
            self.emulator._record_failure(exc)
            await self.ws.close(1011, "emulator error")
        finally:
            run.record.done.set()
            if self._active is not None and self._active.record is run.record:
                self._active = None
            self.emulator._notify()

    async def stop_response(self, reason: str, *, send: bool = True) -> None:
        """Cancel the active response (if any) and wait until it has sent its ``response.done``."""
        if self._active is None:
            return
        run, task = self._active.run, self._active.task
        run.reason = reason
        run.cancel.set()
        if not send:
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise

    def input_usage(self, record: ResponseRecord) -> dict[str, Any]:
        """Input tokens of a response: instructions, tools and every conversation item; what the previous
        response of this connection already read counts as cached (a prompt-cache hit on the prefix)."""
        text = text_tokens(record.instructions) + (text_tokens(_dumps(record.tools)) if record.tools else 0)
        audio = 0
        for item in self.items:
            if item["id"] in self.item_audio:
                audio += input_audio_tokens(duration_ms(self.item_audio[item["id"]]))
            for part in item.get("content", []):
                text += text_tokens(part.get("text") or part.get("transcript"))
            text += text_tokens(item.get("arguments")) + text_tokens(item.get("output"))
        cached_text = min(text, self._previous_input_tokens.get("text", 0))
        cached_audio = min(audio, self._previous_input_tokens.get("audio", 0))
        self._previous_input_tokens = {"text": text, "audio": audio}
        return {
            "input_tokens": text + audio,
            "input_token_details": {
                "text_tokens": text,
                "audio_tokens": audio,
                "image_tokens": 0,
                "cached_tokens": cached_text + cached_audio,
                "cached_tokens_details": {
                    "text_tokens": cached_text,
                    "audio_tokens": cached_audio,
                    "image_tokens": 0,
                },
            },
        }


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


ClientEventHandler = Callable[[EmulatedConnection, dict[str, Any], str | None], Awaitable[None]]

# Client event type -> handler (the connection, the event's JSON, its event_id).
_CLIENT_EVENTS: dict[str, ClientEventHandler] = {
    "session.update": EmulatedConnection.on_session_update,
    "input_audio_buffer.append": _input_audio.on_input_audio_buffer_append,
    "input_audio_buffer.commit": _input_audio.on_input_audio_buffer_commit,
    "input_audio_buffer.clear": _input_audio.on_input_audio_buffer_clear,
    "output_audio_buffer.clear": _input_audio.on_output_audio_buffer_clear,
    "conversation.item.create": _conversation.on_conversation_item_create,
    "conversation.item.delete": _conversation.on_conversation_item_delete,
    "conversation.item.retrieve": _conversation.on_conversation_item_retrieve,
    "conversation.item.truncate": _conversation.on_conversation_item_truncate,
    "response.create": EmulatedConnection.on_response_create,
    "response.cancel": EmulatedConnection.on_response_cancel,
}


def handled_client_event_types() -> frozenset[str]:
    return frozenset(_CLIENT_EVENTS)
