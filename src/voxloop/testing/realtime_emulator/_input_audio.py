"""Input audio buffer client events and the server VAD turn (a mixin of the connection)."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from ._audio import BYTES_PER_MS, VADEdge, duration_ms
from ._responses import input_audio_tokens, new_id, text_tokens

if TYPE_CHECKING:
    from ._session import EmulatedConnection

_MIN_COMMIT_MS = 100


async def on_input_audio_buffer_append(
    conn: EmulatedConnection, data: dict[str, Any], event_id: str | None
) -> None:
    try:
        pcm = base64.b64decode(data["audio"], validate=True)
    except (binascii.Error, ValueError):
        await conn.error(
            "Invalid 'audio'. Expected base64-encoded audio bytes.", "invalid_value", "audio", event_id
        )
        return
    conn._buffer.extend(pcm)
    if conn._vad is None:
        return
    for edge in conn._vad.feed(pcm):
        await _on_vad(conn, edge)
    if not conn._vad.speaking:  # keep only what a later speech start could need as padding
        keep = (conn._vad.prefix_padding_ms + 100) * BYTES_PER_MS
        if len(conn._buffer) > 2 * keep:
            drop = len(conn._buffer) - keep
            del conn._buffer[:drop]
            conn._buffer_start += drop


async def _on_vad(conn: EmulatedConnection, edge: VADEdge) -> None:
    td = conn._turn_detection() or {}
    if edge.kind == "started":
        assert conn._vad is not None
        start = max(edge.at_ms - conn._vad.prefix_padding_ms, conn._buffer_start // BYTES_PER_MS)
        conn._speech_item, conn._speech_start_ms = new_id("item"), start
        await conn.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": start,
                "item_id": conn._speech_item,
            }
        )
        if td.get("interrupt_response", True) is not False and conn._active is not None:
            await conn.stop_response("turn_detected")
        return
    item_id = conn._speech_item or new_id("item")
    await conn.send(
        {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": edge.at_ms, "item_id": item_id}
    )
    start_byte = max(0, conn._speech_start_ms * BYTES_PER_MS - conn._buffer_start)
    end_byte = max(0, edge.at_ms * BYTES_PER_MS - conn._buffer_start)
    audio = bytes(conn._buffer[start_byte:end_byte])
    del conn._buffer[:end_byte]
    conn._buffer_start += end_byte
    conn._speech_item = None
    await _commit(conn, item_id, audio)
    if td.get("create_response", True) is not False and conn._active is None:
        await conn.start_response(None)


async def on_input_audio_buffer_commit(
    conn: EmulatedConnection, data: dict[str, Any], event_id: str | None
) -> None:
    ms = duration_ms(conn._buffer)
    if ms < _MIN_COMMIT_MS:
        await conn.error(
            f"Error committing input audio buffer: buffer too small. Expected at least "
            f"{_MIN_COMMIT_MS}ms of audio, but buffer only has {ms:.2f}ms of audio.",
            "input_audio_buffer_commit_empty",
            None,
            event_id,
        )
        return
    audio = bytes(conn._buffer)
    conn._buffer_start += len(conn._buffer)
    conn._buffer.clear()
    item_id = conn._speech_item or new_id("item")
    conn._speech_item = None
    if conn._vad is not None:
        conn._vad.reset()
    await _commit(conn, item_id, audio)


async def on_input_audio_buffer_clear(
    conn: EmulatedConnection, data: dict[str, Any], event_id: str | None
) -> None:
    conn._buffer_start += len(conn._buffer)
    conn._buffer.clear()
    conn._speech_item = None
    if conn._vad is not None:
        conn._vad.reset()
    await conn.send({"type": "input_audio_buffer.cleared"})


async def _commit(conn: EmulatedConnection, item_id: str, audio: bytes) -> None:
    previous = conn.items[-1]["id"] if conn.items else None
    await conn.send(
        {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous}
    )
    item: dict[str, Any] = {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    conn.item_audio[item_id] = bytearray(audio)
    await conn.add_item(item)
    transcription = conn.session["audio"]["input"].get("transcription")
    if transcription is None:
        return
    transcript = conn.emulator._next_transcript(audio)
    pieces = [transcript] if transcription.get("model") == "whisper-1" else _split_words(transcript)
    for piece in pieces:
        await conn.send(
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item_id,
                "content_index": 0,
                "delta": piece,
            }
        )
    item["content"][0]["transcript"] = transcript
    audio_tokens = input_audio_tokens(duration_ms(audio))
    usage = {
        "type": "tokens",
        "input_tokens": audio_tokens,
        "output_tokens": text_tokens(transcript),
        "total_tokens": audio_tokens + text_tokens(transcript),
        "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
    }
    await conn.send(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id,
            "content_index": 0,
            "transcript": transcript,
            "usage": usage,
        }
    )


async def on_output_audio_buffer_clear(
    conn: EmulatedConnection, data: dict[str, Any], event_id: str | None
) -> None:
    # Over WebSocket there is no server-side output buffer: the client plays (and clears) audio itconn.
    await conn.error(
        "output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
        "invalid_value",
        "type",
        event_id,
    )


def _split_words(text: str) -> list[str]:
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]
