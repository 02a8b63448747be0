"""Scripted replies and the event sequence of one Realtime response.

A test queues :class:`Reply` objects (spoken or written text, function calls, or a failure); each
``response.create`` (or automatic response after a user turn) takes the next one, and
:class:`ResponseRun` plays it out as the GA API does: ``response.created``, per output item
``response.output_item.added`` + ``conversation.item.added``, content parts with audio/transcript or text
deltas, ``*.done`` events, and ``response.done`` with a usage estimate. Cancellation (client
``response.cancel`` or a user barge-in) is checked between events and ends the response as ``cancelled``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._audio import SpokenWord, duration_ms, split_chunks, synthesize

if TYPE_CHECKING:
    from ._session import EmulatedConnection


def new_id(prefix: str) -> str:
    """An id in the API's style (``item_``, ``resp_``, ``call_``, ``event_`` ... + 22 random chars)."""
    return f"{prefix}_{secrets.token_urlsafe(16)[:22]}"


@dataclass
class FunctionCall:
    """A tool call the model makes: ``arguments`` is a JSON string or a dict (dumped for you)."""

    name: str
    arguments: str | dict[str, Any] = "{}"
    call_id: str | None = None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Failure:
    """The response fails: ``response.done`` with status ``failed`` and this error in its status details."""

    message: str = "The server had an error while processing your request."
    type: str = "server_error"
    code: str | None = None


@dataclass
class Reply:
    """What the model answers: some text (spoken in audio mode), then zero or more function calls."""

    text: str = ""
    function_calls: list[FunctionCall] = field(default_factory=list)
    failure: Failure | None = None


ReplySource = str | Reply | Callable[["ResponseRecord"], "str | Reply"]


@dataclass
class ResponseRecord:
    """One response as the emulator produced it, for tests to inspect."""

    id: str
    connection_id: str
    instructions: str | None
    output_modalities: list[str]
    tools: list[dict[str, Any]]
    out_of_band: bool
    request: dict[str, Any] | None  # the ``response`` object of the client's response.create, if any
    reply: Reply | None = None
    status: str = "in_progress"
    status_reason: str | None = None
    output_item_ids: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class _Cancelled(Exception):
    pass


def text_tokens(text: str | None) -> int:
    return math.ceil(len(text) / 4) if text else 0


def input_audio_tokens(ms: int) -> int:
    return math.ceil(ms / 100)  # about 10 tokens a second


def output_audio_tokens(ms: int) -> int:
    return math.ceil(ms / 50)  # about 20 tokens a second


class ResponseRun:
    """Plays one scripted reply out as server events on a connection."""

    def __init__(self, conn: EmulatedConnection, record: ResponseRecord, cancel: asyncio.Event) -> None:
        self.conn = conn
        self.record = record
        self.cancel = cancel
        self.reason = "client_cancelled"
        self.output: list[dict[str, Any]] = []
        self._open_item: dict[str, Any] | None = None
        self._output_text_tokens = 0
        self._output_audio_ms = 0
        self.delay_secs = conn.emulator.response_delay_secs  # fixed when the response starts

    # -- the response object ------------------------------------------------------------------------------

    def response_object(self, status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        session = self.conn.session
        output_audio = session["audio"]["output"]
        request = self.record.request or {}
        voice = ((request.get("audio") or {}).get("output") or {}).get("voice") or output_audio["voice"]
        return {
            "object": "realtime.response",
            "id": self.record.id,
            "status": status,
            "status_details": details,
            "output": [dict(item) for item in self.output],
            "conversation_id": None if self.record.out_of_band else self.conn.conversation_id,
            "output_modalities": self.record.output_modalities,
            "max_output_tokens": request.get("max_output_tokens", session.get("max_output_tokens", "inf")),
            "audio": {"output": {"format": output_audio["format"], "voice": voice}},
            "usage": None,
            "metadata": request.get("metadata"),
        }

    async def run(self, reply_for: Callable[[ResponseRecord], Awaitable[Reply]]) -> None:
        record = self.record
        input_usage = self.conn.input_usage(record)
        await self.conn.send({"type": "response.created", "response": self.response_object("in_progress")})
        status = "completed"
        details: dict[str, Any] = {"type": "completed", "reason": None}
        reply = record.reply = await reply_for(record)
        try:
            await self._wait_delay()
            if reply.failure is not None:
                status = "failed"
                failure = reply.failure
                details = {
                    "type": "failed",
                    "error": {"type": failure.type, "code": failure.code, "message": failure.message},
                }
            else:
                if reply.text or not reply.function_calls:
                    await self._message(reply.text)
                for call in reply.function_calls:
                    await self._function_call(call)
        except _Cancelled:
            status, details = "cancelled", {"type": "cancelled", "reason": self.reason}
            await self._close_open_item("incomplete")
        record.status, record.status_reason = status, details.get("reason")
        done = self.response_object(status, details)
        done["usage"] = record.usage = self._usage(input_usage)
        await self.conn.send({"type": "response.done", "response": done})

    async def _wait_delay(self) -> None:
        delay = self.delay_secs
        if delay > 0:
            try:
                await asyncio.wait_for(self.cancel.wait(), delay)
            except TimeoutError:
                return
        self._check()

    def _check(self) -> None:
        if self.cancel.is_set():
            raise _Cancelled

    # -- output items ---------------------------------------------------------------------------------------

    async def _add_item(self, item: dict[str, Any]) -> int:
        self._check()
        index = len(self.output)
        self.output.append(item)
        self.record.output_item_ids.append(item["id"])
        self._open_item = item
        await self.conn.send(
            {
                "type": "response.output_item.added",
                "response_id": self.record.id,
                "output_index": index,
                "item": dict(item),
            }
        )
        if not self.record.out_of_band:
            await self.conn.add_item(dict(item), announce_done=False)
        return index

    async def _close_open_item(self, status: str) -> None:
        item, self._open_item = self._open_item, None
        if item is None:
            return
        item["status"] = status
        index = self.output.index(item)
        await self.conn.send(
            {
                "type": "response.output_item.done",
                "response_id": self.record.id,
                "output_index": index,
                "item": dict(item),
            }
        )
        if not self.record.out_of_band:
            await self.conn.finish_item(item)

    async def _message(self, text: str) -> None:
        audio_mode = "audio" in self.record.output_modalities
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        index = await self._add_item(item)
        ids = {
            "response_id": self.record.id,
            "item_id": item["id"],
            "output_index": index,
            "content_index": 0,
        }
        part: dict[str, Any] = (
            {"type": "audio", "transcript": ""} if audio_mode else {"type": "text", "text": ""}
        )
        content: dict[str, Any] = (
            {"type": "output_audio", "transcript": ""} if audio_mode else {"type": "output_text", "text": ""}
        )
        item["content"] = [content]
        await self.conn.send({"type": "response.content_part.added", **ids, "part": dict(part)})
        if audio_mode:
            await self._speak(text, ids, content)
            self._check()
            await self.conn.send({"type": "response.output_audio.done", **ids})
            await self.conn.send({"type": "response.output_audio_transcript.done", **ids, "transcript": text})
            part["transcript"] = text
        else:
            for word in _words(text):
                self._check()
                content["text"] += word
                await self.conn.send({"type": "response.output_text.delta", **ids, "delta": word})
            await self.conn.send({"type": "response.output_text.done", **ids, "text": text})
            part["text"] = text
        self._output_text_tokens += text_tokens(text)
        await self.conn.send({"type": "response.content_part.done", **ids, "part": part})
        await self._close_open_item("completed")

    async def _speak(self, text: str, ids: dict[str, Any], content: dict[str, Any]) -> None:
        emulator = self.conn.emulator
        pcm, words = synthesize(text, style=emulator.voice_style)
        audio = self.conn.item_audio.setdefault(ids["item_id"], bytearray())
        self.conn.item_words[ids["item_id"]] = words
        for word in words:
            self._check()
            content["transcript"] += word.text
            await self.conn.send(
                {"type": "response.output_audio_transcript.delta", **ids, "delta": word.text}
            )
            for chunk in split_chunks(
                pcm[_byte(word.start_ms) : _byte(word.end_ms)], emulator.audio_chunk_ms
            ):
                self._check()
                audio.extend(chunk)
                self._output_audio_ms = duration_ms(audio)
                delta = base64.b64encode(chunk).decode("ascii")
                await self.conn.send({"type": "response.output_audio.delta", **ids, "delta": delta})
                await asyncio.sleep(0)  # let the session read a cancel or barge-in between chunks

    async def _function_call(self, call: FunctionCall) -> None:
        arguments = call.arguments_json()
        call_id = call.call_id or new_id("call")
        item = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        index = await self._add_item(item)
        ids = {
            "response_id": self.record.id,
            "item_id": item["id"],
            "output_index": index,
            "call_id": call_id,
        }
        step = max(1, math.ceil(len(arguments) / 4))
        for start in range(0, len(arguments), step):
            self._check()
            delta = arguments[start : start + step]
            item["arguments"] += delta
            await self.conn.send({"type": "response.function_call_arguments.delta", **ids, "delta": delta})
        await self.conn.send(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "name": call.name,
                "arguments": arguments,
            }
        )
        self._output_text_tokens += text_tokens(arguments) + text_tokens(call.name)
        await self._close_open_item("completed")

    # -- usage ----------------------------------------------------------------------------------------------

    def _usage(self, input_usage: dict[str, Any]) -> dict[str, Any]:
        audio_tokens = output_audio_tokens(self._output_audio_ms)
        output_tokens = self._output_text_tokens + audio_tokens
        return {
            **input_usage,
            "output_tokens": output_tokens,
            "total_tokens": input_usage["input_tokens"] + output_tokens,
            "output_token_details": {"text_tokens": self._output_text_tokens, "audio_tokens": audio_tokens},
        }


def _byte(ms: int) -> int:
    return ms * 48


def _words(text: str) -> list[str]:
    """Text deltas: each word with the whitespace before it."""
    pieces: list[str] = []
    current = ""
    for char in text:
        if char.isspace() and current.strip():
            pieces.append(current)
            current = ""
        current += char
    if current:
        pieces.append(current)
    return pieces


def heard_text(words: list[SpokenWord], audio_end_ms: int) -> str:
    """The words that had started playing by ``audio_end_ms`` (what a listener heard, at word granularity)."""
    return "".join(word.text for word in words if word.start_ms < audio_end_ms).strip()
