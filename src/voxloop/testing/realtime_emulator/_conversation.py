"""Conversation client events: item create, delete, retrieve and truncate (handlers of the connection's
dispatch table)."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._audio import BYTES_PER_MS, duration_ms
from ._responses import heard_text, new_id

if TYPE_CHECKING:
    from ._session import EmulatedConnection


@dataclass
class Truncation:
    """A successful ``conversation.item.truncate``; ``heard_text`` is what had been spoken by that point."""

    item_id: str
    content_index: int
    audio_end_ms: int
    audio_ms_before: int
    transcript_before: str
    heard_text: str


async def on_conversation_item_create(
    conn: EmulatedConnection, data: dict[str, Any], event_id: str | None
) -> None:
    item = copy.deepcopy(data["item"])
    item.setdefault("id", new_id("item"))
    if conn.find_item(item["id"]) is not None:
        await conn.error(
            f"Item with id '{item['id']}' already exists.", "item_id_already_exists", "item.id", event_id
        )
        return
    previous = data.get("previous_item_id")
    if previous not in (None, "root") and conn.find_item(previous) is None:
        await conn.error(
            f"Previous item with id '{previous}' not found.",
            "item_not_found",
            "previous_item_id",
            event_id,
        )
        return
    item["object"] = "realtime.item"
    item["status"] = "completed"
    for part in item.get("content", []):
        if part.get("type") == "input_audio" and part.get("audio"):
            conn.item_audio[item["id"]] = bytearray(base64.b64decode(part["audio"]))
    await conn.add_item(item, previous_item_id=previous)


async def on_conversation_item_delete(
    conn: EmulatedConnection, data: dict[str, Any], event_id: str | None
) -> None:
    item = conn.find_item(data["item_id"])
    if item is None:
        await conn.error(
            f"Error deleting item: the item with id '{data['item_id']}' does not exist.",
            "item_delete_invalid_item_id",
            "item_id",
            event_id,
        )
        return
    conn.conversation.remove(item["id"])
    await conn.send({"type": "conversation.item.deleted", "item_id": item["id"]})


async def on_conversation_item_retrieve(
    conn: EmulatedConnection, data: dict[str, Any], event_id: str | None
) -> None:
    item = conn.find_item(data["item_id"])
    if item is None:
        await conn.error(
            f"Error retrieving item: the item with id '{data['item_id']}' does not exist.",
            "item_retrieve_invalid_item_id",
            "item_id",
            event_id,
        )
        return
    full = copy.deepcopy(item)
    audio = conn.item_audio.get(item["id"])
    for part in full.get("content", []):
        if audio is not None and part.get("type") in ("input_audio", "output_audio"):
            part["audio"] = base64.b64encode(bytes(audio)).decode("ascii")
    await conn.send({"type": "conversation.item.retrieved", "item": full})


async def on_conversation_item_truncate(
    conn: EmulatedConnection, data: dict[str, Any], event_id: str | None
) -> None:
    item_id, index, end_ms = data["item_id"], data["content_index"], data["audio_end_ms"]
    item = conn.find_item(item_id)
    if item is None:
        await conn.error(
            f"Error truncating item: the item with id '{item_id}' does not exist.",
            "item_truncate_invalid_item_id",
            "item_id",
            event_id,
        )
        return
    content = item.get("content") or []
    if (
        item.get("role") != "assistant"
        or index >= len(content)
        or content[index].get("type") != "output_audio"
    ):
        await conn.error(
            "Only the audio content of assistant messages can be truncated.",
            "invalid_value",
            "content_index",
            event_id,
        )
        return
    audio = conn.item_audio.get(item_id, bytearray())
    audio_ms = duration_ms(audio)
    if end_ms < 0 or end_ms > audio_ms:
        await conn.error(
            f"Audio content of {audio_ms}ms is already shorter than {end_ms}ms",
            "invalid_value",
            "audio_end_ms",
            event_id,
        )
        return
    transcript = content[index].get("transcript") or ""
    heard = heard_text(conn.item_words.get(item_id, []), end_ms)
    del audio[end_ms * BYTES_PER_MS :]
    content[index]["transcript"] = ""  # the API drops the transcript so no unheard text stays in context
    conn.truncations.append(Truncation(item_id, index, end_ms, audio_ms, transcript, heard))
    await conn.send(
        {
            "type": "conversation.item.truncated",
            "item_id": item_id,
            "content_index": index,
            "audio_end_ms": end_ms,
        }
    )
