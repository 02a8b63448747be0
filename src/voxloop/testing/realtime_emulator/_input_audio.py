"""Input audio buffer client events and the server VAD turn: handlers of the connection's dispatch
table, over its :class:`~._input_buffer.InputBuffer`."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from ._audio import duration_ms
from ._input_buffer import SpeechStarted, SpeechStopped
from ._responses import input_audio_tokens, text_tokens

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
    for heard in conn.input_buffer.append(pcm):
        await _on_vad(conn, heard)


async def _on_vad(conn: EmulatedConnection, heard: SpeechStarted | SpeechStopped) -> None:
    td = conn.turn_detection() or {}
    if isinstance(heard, SpeechStarted):
        await conn.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": heard.audio_start_ms,
                "item_id": heard.item_id,
            }
        )
        if td.get("interrupt_response", True) is not False and conn.responding:
            await conn.stop_response("turn_detected")
        return
    speech = heard.speech
    await conn.send(
        {
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": heard.audio_end_ms,
            "item_id": speech.item_id,
        }
    )
    await _commit(conn, speech.item_id, speech.audio)
    if td.get("create_response", True) is not False and not conn.responding:
        await conn.start_response(None)


async def on_input_audio_buffer_commit(
    conn: EmulatedConnection, data: dict[str, Any], event_id: str | None
) -> None:
    ms = conn.input_buffer.ms
    if ms < _MIN_COMMIT_MS:
        await conn.error(
            f"Error committing input audio buffer: buffer too small. Expected at least "
            f"{_MIN_COMMIT_MS}ms of audio, but buffer only has {ms:.2f}ms of audio.",
            "input_audio_buffer_commit_empty",
            None,
            event_id,
        )
        return
    speech = conn.input_buffer.commit()
    await _commit(conn, speech.item_id, speech.audio)


async def on_input_audio_buffer_clear(
    conn: EmulatedConnection, data: dict[str, Any], event_id: str | None
) -> None:
    conn.input_buffer.clear()
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
    # Over WebSocket there is no server-side output buffer: the client plays (and clears) audio itself.
    await conn.error(
        "output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
        "invalid_value",
        "type",
        event_id,
    )


def _split_words(text: str) -> list[str]:
    words = text.split(" ")
    return [word if i == 0 else " " + word for i, word in enumerate(words)]
