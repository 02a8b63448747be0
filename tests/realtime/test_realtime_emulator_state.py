"""The emulator's connection state on its own: the input audio buffer (pure), and the dispatch table
of client events against the SDK's list of them."""

from __future__ import annotations

from typing import get_args

import pytest

pytest.importorskip("openai")

from openai.types.realtime import RealtimeClientEvent

from voxloop.testing.realtime_emulator._audio import BYTES_PER_MS, synthesize
from voxloop.testing.realtime_emulator._input_buffer import InputBuffer, SpeechStarted, SpeechStopped
from voxloop.testing.realtime_emulator._items import ConversationItems
from voxloop.testing.realtime_emulator._session import handled_client_event_types

SERVER_VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}


def silence(ms: int) -> bytes:
    return b"\x00\x00" * (ms * BYTES_PER_MS // 2)


def test_every_client_event_type_of_the_sdk_has_a_handler() -> None:
    sdk_types = {
        literal
        for member in get_args(get_args(RealtimeClientEvent)[0])
        for literal in get_args(member.model_fields["type"].annotation)
    }
    assert handled_client_event_types() == sdk_types


def test_without_turn_detection_the_buffer_holds_everything_until_a_commit() -> None:
    buffer = InputBuffer()
    buffer.configure(None)
    speech, _ = synthesize("Hello there.")
    assert buffer.append(silence(2000)) == []
    assert buffer.append(speech) == []  # no VAD: no edges
    assert buffer.ms == 2000 + len(speech) // BYTES_PER_MS
    committed = buffer.commit()
    assert committed.item_id.startswith("item_")
    assert len(committed.audio) == 2000 * BYTES_PER_MS + len(speech)
    assert buffer.ms == 0


def test_the_vad_turns_speech_into_an_item_with_its_padding_and_keeps_session_time() -> None:
    buffer = InputBuffer()
    buffer.configure(SERVER_VAD)
    speech, _ = synthesize("Hello there, how are you?")
    assert buffer.append(silence(3000)) == []
    assert buffer.ms < 3000  # trimmed while nobody speaks: only the padding is needed
    (started,) = buffer.append(speech)
    assert isinstance(started, SpeechStarted)
    assert 2600 <= started.audio_start_ms <= 3000  # the onset minus the 300 ms padding, in session time
    (stopped,) = buffer.append(silence(800))
    assert isinstance(stopped, SpeechStopped)
    assert stopped.speech.item_id == started.item_id
    assert stopped.audio_end_ms > started.audio_start_ms + len(speech) // BYTES_PER_MS
    assert len(stopped.speech.audio) == (stopped.audio_end_ms - started.audio_start_ms) * BYTES_PER_MS
    assert buffer.ms < 800  # the turn left the buffer
    buffer.clear()
    assert buffer.ms == 0


def test_a_new_turn_detection_setting_reconfigures_the_vad() -> None:
    buffer = InputBuffer()
    buffer.configure(SERVER_VAD)
    assert buffer.vad is not None and buffer.vad.silence_duration_ms == 500
    buffer.configure({**SERVER_VAD, "silence_duration_ms": 200, "threshold": None})
    assert buffer.vad.silence_duration_ms == 200 and buffer.vad.threshold == 0.5
    buffer.configure({"type": "semantic_vad", "eagerness": "auto"})
    assert buffer.vad.prefix_padding_ms == 300
    buffer.configure(None)
    assert buffer.vad is None


def test_conversation_items_keep_their_order_and_report_the_previous_item() -> None:
    conversation = ConversationItems()
    assert conversation.insert({"id": "a"}) is None
    assert conversation.insert({"id": "c"}) == "a"
    assert conversation.insert({"id": "b"}, previous_item_id="a") == "a"
    assert conversation.insert({"id": "first"}, previous_item_id="root") is None
    assert [item["id"] for item in conversation.items] == ["first", "a", "b", "c"]
    conversation.audio["b"] = bytearray(b"\x00\x00")
    assert conversation.update({"id": "b", "status": "completed"}) == "a"
    assert conversation.find("b") == {"id": "b", "status": "completed"}
    assert conversation.remove("b") == {"id": "b", "status": "completed"}
    assert "b" not in conversation.audio and conversation.find("b") is None
    assert conversation.remove("b") is None
