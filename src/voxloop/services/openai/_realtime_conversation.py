"""Keeping the Realtime server's conversation in step with our ``LLMContext``.

The context is the truth (it holds what was heard); the server holds its own copy of the conversation.
:class:`ConversationSync` knows which context messages the server already has, either because we sent
them as items or because the server produced them itself (the user's committed audio, the model's own
replies and tool calls), and turns the rest into ``conversation.item.create`` items:

- the leading system (or developer) message becomes the session's ``instructions``;
- user text -> a user ``input_text`` item (images in OpenAI's ``image_url`` shape -> ``input_image``);
- assistant text -> an assistant ``output_text`` item; assistant ``tool_calls`` -> ``function_call`` items;
- a tool message -> a ``function_call_output`` item, once its content is final (not "IN_PROGRESS");
- other system messages -> system ``input_text`` items.

Messages are recognised by identity (the context keeps its dicts; the aggregators edit tool messages in
place), so nothing is compared by text except the two kinds the server made itself: a user message
written from the transcription of committed audio, and an assistant message written from the model's
transcript (the heard prefix of it, after a barge-in).

A context replaced wholesale (``LLMMessagesUpdateFrame`` copies the messages, a summarizer drops old
ones) is not appended: :meth:`ConversationSync.rewritten` tells the service, which starts a fresh server
conversation and replays the context as it now is.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

IN_PROGRESS = "IN_PROGRESS"
_MEMORY = 32


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return " ".join(p for p in parts if p) or None
    return None


@dataclass
class SyncPlan:
    """What to send to bring the server up to date with the context."""

    instructions: str | None = None  # the context's system message, when it differs from what was sent
    items: list[dict[str, Any]] = field(default_factory=list)
    new_input: bool = False  # items that call for a reply (user text, system notes), not replays
    outputs: int = 0  # function_call_output items


class ConversationSync:
    """Which context messages the server already holds (see the module docstring)."""

    def __init__(self) -> None:
        self._synced: dict[int, dict[str, Any]] = {}  # id(message) -> message (kept alive: ids stay unique)
        self.known_calls: set[str] = set()
        self._user_transcripts: list[str] = []  # committed audio whose user message has not come yet
        self._assistant_transcripts: deque[str] = deque(maxlen=_MEMORY)
        self.instructions_sent: str | None = None
        self.tools_sent: list[dict[str, Any]] | None = None

    def reset(self) -> None:
        """A new connection: the server holds nothing."""
        self._synced.clear()
        self.known_calls.clear()
        self._user_transcripts.clear()
        self.instructions_sent = None

    # -- what the server produced ------------------------------------------------------------

    def user_audio_transcribed(self, transcript: str) -> None:
        if transcript.strip():
            self._user_transcripts.append(_norm(transcript))
            del self._user_transcripts[:-_MEMORY]

    def assistant_said(self, transcript: str) -> None:
        if transcript.strip():
            self._assistant_transcripts.append(_norm(transcript))

    def server_call(self, call_id: str) -> None:
        self.known_calls.add(call_id)

    @property
    def has_unmatched_user_audio(self) -> bool:
        return bool(self._user_transcripts)

    # -- planning ----------------------------------------------------------------------------

    def rewritten(self, messages: list[dict[str, Any]]) -> bool:
        """Whether messages the server already holds have left the context (it was replaced or cut),
        so the server's conversation no longer matches it and appending would repeat it."""
        if not self._synced:
            return False
        live = {id(m) for m in messages}
        return any(key not in live for key in self._synced)

    def plan(self, messages: list[dict[str, Any]], *, replay: bool = False) -> SyncPlan:
        """Items for every message the server lacks; ``replay``: after a reconnect, send everything."""
        live = {id(m) for m in messages}
        for key in [k for k in self._synced if k not in live]:
            del self._synced[key]  # the context was rewritten (summary, update): forget what left it
        plan = SyncPlan()
        for index, message in enumerate(messages):
            if id(message) in self._synced:
                continue
            role = message.get("role")
            if index == 0 and role in ("system", "developer"):
                text = _text_of(message.get("content")) or ""
                if text != self.instructions_sent:
                    plan.instructions = text
                self._mark(message)
                continue
            if role == "tool":
                if self._tool_item(message, plan):
                    self._mark(message)
                continue
            self._mark(message)
            if role == "user":
                self._user_items(message, plan, replay)
            elif role == "assistant":
                self._assistant_items(message, plan, replay)
            elif role in ("system", "developer"):
                note = _text_of(message.get("content"))
                if note:
                    plan.items.append(_message("system", [{"type": "input_text", "text": note}]))
                    plan.new_input = True
        return plan

    def session_synced(self, instructions: str | None, tools: list[dict[str, Any]]) -> None:
        """A ``session.update`` carried these instructions and tools."""
        self.instructions_sent = instructions
        self.tools_sent = tools

    def _mark(self, message: dict[str, Any]) -> None:
        self._synced[id(message)] = message

    def _user_items(self, message: dict[str, Any], plan: SyncPlan, replay: bool) -> None:
        content = message.get("content")
        text = _text_of(content)
        if not replay and text is not None and self._matches_user_audio(text):
            return
        parts: list[dict[str, Any]] = []
        if isinstance(content, str):
            parts.append({"type": "input_text", "text": content})
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text" and part.get("text"):
                    parts.append({"type": "input_text", "text": part["text"]})
                elif part.get("type") == "image_url":
                    url = part.get("image_url")
                    url = url.get("url") if isinstance(url, dict) else url
                    if isinstance(url, str):
                        parts.append({"type": "input_image", "image_url": url})
        if parts:
            plan.items.append(_message("user", parts))
            plan.new_input = plan.new_input or not replay

    def _matches_user_audio(self, text: str) -> bool:
        said = _norm(text)
        matched = [t for t in self._user_transcripts if t and t in said]
        if not matched:
            return False
        for transcript in matched:
            self._user_transcripts.remove(transcript)
        return True

    def _assistant_items(self, message: dict[str, Any], plan: SyncPlan, replay: bool) -> None:
        text = _text_of(message.get("content"))
        if text and (replay or not self._matches_assistant(text)):
            plan.items.append(_message("assistant", [{"type": "output_text", "text": text}]))
        for call in message.get("tool_calls") or ():
            call_id = call.get("id")
            function = call.get("function") or {}
            if not call_id or (not replay and call_id in self.known_calls):
                continue
            self.known_calls.add(call_id)
            plan.items.append(
                {
                    "type": "function_call",
                    "call_id": call_id,
                    "name": function.get("name", ""),
                    "arguments": function.get("arguments") or "{}",
                }
            )

    def _matches_assistant(self, text: str) -> bool:
        said = _norm(text)
        return any(t.startswith(said) or said in t for t in self._assistant_transcripts)

    def _tool_item(self, message: dict[str, Any], plan: SyncPlan) -> bool:
        """Add the call's output once it is final; False while the call is still running."""
        content = message.get("content")
        if content == IN_PROGRESS:
            return False
        call_id = message.get("tool_call_id")
        if not call_id:
            return True
        output = content if isinstance(content, str) else (_text_of(content) or "")
        plan.items.append({"type": "function_call_output", "call_id": call_id, "output": output})
        plan.outputs += 1
        return True


def awaits_reply(messages: list[dict[str, Any]]) -> bool:
    """Whether the conversation ends with something for the model to answer: the user's words, a
    finished call's result or a system note (not the model's own words, nor a lone system prompt)."""
    if not messages:
        return False
    last = messages[-1]
    role = last.get("role")
    if role == "assistant" or (role in ("system", "developer") and len(messages) == 1):
        return False
    return not (role == "tool" and last.get("content") == IN_PROGRESS)


def _message(role: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": content}


RETRIEVE_PREFIX = "rci_"  # the event id of conversation.item.retrieve is this plus the item id


@dataclass
class ItemRetrievals:
    """Items asked for with ``conversation.item.retrieve`` and not answered yet (one request per item,
    however many callers wait for it)."""

    _waiting: set[str] = field(default_factory=set)

    def ask(self, item_id: str) -> bool:
        """Note a request; True when it must be sent (none for this item is on its way)."""
        if item_id in self._waiting:
            return False
        self._waiting.add(item_id)
        return True

    def answered(self, item_id: str) -> bool:
        """The server answered (or refused) for this item; False if nobody asked."""
        if item_id not in self._waiting:
            return False
        self._waiting.discard(item_id)
        return True

    def take_all(self) -> list[str]:
        """Every request still waiting (the connection is gone: none will be answered)."""
        waiting, self._waiting = sorted(self._waiting), set()
        return waiting

    def __len__(self) -> int:
        return len(self._waiting)
