"""Two of the Realtime core's state objects on their own: the mirror of the server's conversation
(which context messages the server holds) and the played-audio position (what a truncation may cut)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("openai")

from voxloop.services.openai._realtime_audio import BYTES_PER_MS, PlayedAudio, TranscriptPacer
from voxloop.services.openai._realtime_conversation import IN_PROGRESS, ConversationSync, awaits_reply

_MS = 1_000_000


def test_the_mirror_sends_each_message_once_and_the_system_prompt_as_instructions() -> None:
    mirror = ConversationSync()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    plan = mirror.plan(messages)
    assert plan.instructions == "Be brief."
    assert plan.items == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
    ]
    assert plan.new_input
    mirror.session_synced("Be brief.", [])
    messages.append({"role": "assistant", "content": "Hello!"})
    second = mirror.plan(messages)
    assert second.instructions is None and not second.new_input
    assert [item["role"] for item in second.items] == ["assistant"]
    assert mirror.plan(messages).items == []  # nothing new


def test_what_the_server_produced_itself_is_not_sent_back() -> None:
    mirror = ConversationSync()
    mirror.user_audio_transcribed("What time is it?")
    mirror.assistant_said("It is noon, and the sun is high.")
    mirror.server_call("call_1")
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "What time  is it?"},  # written from the transcription
        {"role": "assistant", "content": "It is noon,"},  # the heard prefix after a barge-in
        {
            "role": "assistant",
            "tool_calls": [{"id": "call_1", "function": {"name": "get_time", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": IN_PROGRESS},
    ]
    assert mirror.plan(messages).items == []  # the tool result is not final yet
    messages[3]["content"] = '{"time": "12:00"}'  # the aggregator edits it in place
    plan = mirror.plan(messages)
    assert plan.items == [
        {"type": "function_call_output", "call_id": "call_1", "output": '{"time": "12:00"}'}
    ]
    assert plan.outputs == 1


def test_a_replaced_context_is_reported_as_rewritten_and_a_replay_sends_everything() -> None:
    mirror = ConversationSync()
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "Two"},
    ]
    mirror.plan(messages)
    assert not mirror.rewritten(messages)
    copied = [dict(m) for m in messages]  # what LLMMessagesUpdateFrame does
    assert mirror.rewritten(copied)
    mirror.reset()
    replay = mirror.plan(copied, replay=True)
    assert [item["role"] for item in replay.items] == ["user", "assistant"]
    assert not replay.new_input  # a replay asks for no answer by itself


def test_awaits_reply_tells_what_the_model_should_answer() -> None:
    assert awaits_reply([{"role": "user", "content": "Hi"}])
    assert not awaits_reply([{"role": "system", "content": "Be brief."}])
    assert not awaits_reply([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    assert not awaits_reply([{"role": "tool", "tool_call_id": "c", "content": IN_PROGRESS}])
    assert not awaits_reply([])


def test_played_audio_follows_real_time_and_never_exceeds_what_was_received() -> None:
    played = PlayedAudio()
    played.received("item_1", 0, 500 * BYTES_PER_MS, now_ns=0)
    assert played.played_ms(200 * _MS) == 200
    assert played.unplayed(200 * _MS)
    assert played.played_ms(900 * _MS) == 500  # capped at what was received
    assert not played.unplayed(900 * _MS)
    played.received("item_1", 0, 500 * BYTES_PER_MS, now_ns=2000 * _MS)  # the player ran dry meanwhile
    assert played.played_ms(2100 * _MS) == 1000  # capped at the 1000 ms received
    played.stop(2100 * _MS)
    assert played.item is None and played.played_ms(3000 * _MS) == 0


def test_a_new_item_plays_after_the_audio_queued_before_it() -> None:
    played = PlayedAudio()
    played.received("item_1", 0, 300 * BYTES_PER_MS, now_ns=0)
    played.received("item_2", 0, 300 * BYTES_PER_MS, now_ns=100 * _MS)
    assert played.item is not None and played.item.item_id == "item_2"
    assert played.played_ms(200 * _MS) == 0  # item_1 still plays until 300 ms
    assert played.played_ms(400 * _MS) == 100


def test_the_pacer_releases_text_at_its_audio_position_plus_the_lead() -> None:
    pacer = TranscriptPacer(lead_ms=100)
    pacer.add("item_1", "Hello")
    pieces = pacer.split("item_1", b"\x00\x00" * (150 * BYTES_PER_MS // 2))
    assert [len(p) if isinstance(p, bytes) else p for p in pieces] == [
        100 * BYTES_PER_MS,
        "Hello",
        50 * BYTES_PER_MS,
    ]
    pacer.add("item_1", " there")
    assert pacer.flush() == [" there"]
    pacer.add("item_1", "lost")
    pacer.clear()
    assert pacer.flush() == []
