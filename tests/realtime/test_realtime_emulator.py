"""The Realtime emulator, driven by the official `openai` SDK client: the session, conversation, audio turns
with the VAD, responses, function calls, truncation and cancellation."""

from __future__ import annotations

import asyncio
import base64
import wave
from typing import Any

import numpy as np
import pytest
import soxr

pytest.importorskip("openai")

from openai import AsyncOpenAI

from helpers.paths import AUDIO
from voxloop.testing.realtime_emulator import RealtimeEmulator

MODEL = "gpt-realtime"


def load_24k(name: str, *, lead_silence_ms: int = 500, tail_silence_ms: int = 1000) -> bytes:
    """A 16 kHz test WAV resampled to the API's 24 kHz PCM16, padded with silence on both sides."""
    with wave.open(str(AUDIO / name), "rb") as wav:
        assert wav.getframerate() == 16000 and wav.getsampwidth() == 2
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    resampled = soxr.resample(pcm, 16000, 24000)
    lead = np.zeros(lead_silence_ms * 24, dtype=np.int16)
    tail = np.zeros(tail_silence_ms * 24, dtype=np.int16)
    return np.concatenate([lead, resampled.astype(np.int16), tail]).astype("<i2").tobytes()


async def collect_until(conn: Any, event_type: str, *, timeout: float = 10.0) -> list[Any]:
    """Every server event up to and including the first of ``event_type``."""
    events: list[Any] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await conn.recv()
            events.append(event)
            if event.type == event_type:
                return events


async def send_audio(conn: Any, pcm: bytes, chunk_ms: int = 40) -> None:
    size = chunk_ms * 48
    for start in range(0, len(pcm), size):
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[start : start + size]).decode())


def types(events: list[Any]) -> list[str]:
    return [event.type for event in events]


def audio_of(events: list[Any]) -> bytes:
    return b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")


def client(emu: RealtimeEmulator, api_key: str | None = None) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=emu.base_url, api_key=api_key or emu.api_key or "unused")


async def test_session_created_then_updated_with_merged_settings() -> None:
    async with RealtimeEmulator() as emu, client(emu).realtime.connect(model="gpt-realtime-2.1") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        assert created.session.model == "gpt-realtime-2.1"
        assert created.session.audio.input.format.rate == 24000
        assert created.session.audio.output.format.type == "audio/pcm"
        assert created.session.audio.input.turn_detection.type == "server_vad"

        await conn.session.update(
            session={
                "type": "realtime",
                "instructions": "Be brief.",
                "audio": {
                    "input": {
                        "transcription": {"model": "gpt-realtime-whisper"},
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
                    }
                },
            }
        )
        updated = await conn.recv()
        assert updated.type == "session.updated"
        assert updated.session.instructions == "Be brief."
        detection = updated.session.audio.input.turn_detection
        assert (detection.silence_duration_ms, detection.threshold) == (300, 0.5)  # merged with the defaults
        assert updated.session.audio.output.voice == "marin"  # untouched settings survive

        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        manual = await conn.recv()
        assert manual.session.audio.input.turn_detection is None
        assert manual.session.audio.input.transcription.model == "gpt-realtime-whisper"
    emu.assert_valid()
    assert emu.connections[0].headers["Authorization"] == "Bearer test-key"


async def test_spoken_turn_gives_vad_events_transcription_and_an_audio_response() -> None:
    async with RealtimeEmulator() as emu, client(emu).realtime.connect(model=MODEL) as conn:
        await conn.recv()
        await conn.session.update(
            session={
                "type": "realtime",
                "audio": {"input": {"transcription": {"model": "gpt-realtime-whisper"}}},
            }
        )
        await conn.recv()
        emu.add_transcript("What's the weather like today?")
        emu.add_reply("It is sunny and warm.")
        await send_audio(conn, load_24k("utt01_weather.wav", lead_silence_ms=600))
        events = await collect_until(conn, "response.done")

    names = types(events)
    order = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    positions = [names.index(name) for name in order]
    assert positions == sorted(positions), names

    started = events[names.index("input_audio_buffer.speech_started")]
    stopped = events[names.index("input_audio_buffer.speech_stopped")]
    committed = events[names.index("input_audio_buffer.committed")]
    assert 200 <= started.audio_start_ms <= 600  # speech at 600 ms, minus the 300 ms prefix padding
    assert stopped.audio_end_ms - started.audio_start_ms > 1500
    assert started.item_id == stopped.item_id == committed.item_id
    completed = events[names.index("conversation.item.input_audio_transcription.completed")]
    assert completed.transcript == "What's the weather like today?"
    deltas = "".join(e.delta for e in events if e.type == "conversation.item.input_audio_transcription.delta")
    assert deltas == completed.transcript

    transcript = "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")
    assert transcript == "It is sunny and warm."
    audio = audio_of(events)
    assert len(audio) % 2 == 0 and 1000 <= len(audio) // 48 <= 3000  # ~proportional to 21 characters
    assert np.abs(np.frombuffer(audio, dtype="<i2")).max() > 3000  # audible, not silence
    done = events[-1].response
    assert done.status == "completed"
    assert done.usage.input_token_details.audio_tokens > 0
    assert done.usage.output_token_details.audio_tokens > 0
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens
    roles = [item.get("role") for item in emu.connections[0].items]
    assert roles == ["user", "assistant"]
    emu.assert_valid()


async def test_manual_turns_commit_and_respond_only_when_asked() -> None:
    async with RealtimeEmulator() as emu, client(emu).realtime.connect(model=MODEL) as conn:
        await conn.recv()
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        await conn.recv()
        await conn.input_audio_buffer.commit()
        empty = await conn.recv()
        assert empty.type == "error" and empty.error.code == "input_audio_buffer_commit_empty"

        await send_audio(conn, load_24k("utt02_timer.wav"))
        await conn.input_audio_buffer.commit()
        events = await collect_until(conn, "conversation.item.done")
        assert types(events) == [
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
        ]  # no VAD events, no transcription, no response
        await conn.response.create()
        response = await collect_until(conn, "response.done")
        assert response[0].type == "response.created"
        assert response[-1].response.usage.input_token_details.audio_tokens > 0
        await conn.input_audio_buffer.clear()
        assert (await conn.recv()).type == "input_audio_buffer.cleared"
    emu.assert_valid()


async def test_text_modality_and_per_response_instructions() -> None:
    async with RealtimeEmulator() as emu, client(emu).realtime.connect(model=MODEL) as conn:
        await conn.recv()
        emu.add_reply("Plain text answer.")
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
        )
        added = await collect_until(conn, "conversation.item.done")
        assert added[0].type == "conversation.item.added" and added[0].item.content[0].text == "Hi"
        await conn.response.create(
            response={"output_modalities": ["text"], "instructions": "Answer in text."}
        )
        events = await collect_until(conn, "response.done")
        second_events: list[Any] = []
        await conn.response.create()
        second_events = await collect_until(conn, "response.done")

    assert "response.output_audio.delta" not in types(events)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done_text = next(e.text for e in events if e.type == "response.output_text.done")
    assert text == done_text == "Plain text answer."
    assert events[-1].response.output_modalities == ["text"]
    assert events[-1].response.output[0].content[0].type == "output_text"
    record = emu.responses[0]
    assert record.instructions == "Answer in text." and record.output_modalities == ["text"]
    assert emu.responses[1].instructions != "Answer in text."  # per response, not sticky
    assert "response.output_audio.delta" in types(second_events)  # the session default modality is audio
    assert second_events[-1].response.usage.input_token_details.cached_tokens > 0
    emu.assert_valid()


async def test_function_call_round_trip() -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    async with RealtimeEmulator() as emu, client(emu).realtime.connect(model=MODEL) as conn:
        await conn.recv()
        await conn.session.update(
            session={"type": "realtime", "tools": [tool], "output_modalities": ["text"]}
        )
        await conn.recv()
        emu.add_function_call("get_weather", {"city": "Paris"}, call_id="call_weather_1")
        emu.add_reply("It is sunny in Paris.")
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}
        )
        await conn.response.create()
        events = await collect_until(conn, "response.done")
        args_done = next(e for e in events if e.type == "response.function_call_arguments.done")
        assert (args_done.name, args_done.call_id) == ("get_weather", "call_weather_1")
        assert args_done.arguments == '{"city": "Paris"}'
        assert "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta") == (
            args_done.arguments
        )
        assert events[-1].response.output[0].type == "function_call"

        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": "call_weather_1", "output": '{"sky": "clear"}'}
        )
        await conn.response.create()
        final = await collect_until(conn, "response.done")
        answer = "".join(e.delta for e in final if e.type == "response.output_text.delta")
        assert answer == "It is sunny in Paris."

    kinds = [item["type"] for item in emu.connections[0].items]
    assert kinds == ["message", "function_call", "function_call_output", "message"]
    emu.assert_valid()


async def test_function_call_to_an_undeclared_tool_is_reported() -> None:
    async with RealtimeEmulator() as emu, client(emu).realtime.connect(model=MODEL) as conn:
        await conn.recv()
        emu.add_function_call("launch_rocket")
        await conn.response.create()
        await collect_until(conn, "response.done")
    with pytest.raises(AssertionError, match="launch_rocket"):
        emu.assert_valid()


async def test_truncate_within_and_beyond_the_audio() -> None:
    async with RealtimeEmulator() as emu, client(emu).realtime.connect(model=MODEL) as conn:
        await conn.recv()
        emu.add_reply("One two three four five six seven.")
        await conn.response.create()
        events = await collect_until(conn, "response.done")
        item_id = events[-1].response.output[0].id
        audio_ms = len(audio_of(events)) // 48

        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=700)
        truncated = await conn.recv()
        assert truncated.type == "conversation.item.truncated"
        assert (truncated.item_id, truncated.audio_end_ms) == (item_id, 700)
        cut = emu.truncations[0]
        assert cut.audio_ms_before == audio_ms
        assert cut.heard_text and "One two three four five six seven.".startswith(cut.heard_text)
        assert cut.heard_text != cut.transcript_before

        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=audio_ms)
        error = await conn.recv()  # the item is only 700 ms long now
        assert error.type == "error" and "already shorter than" in error.error.message
        assert error.error.param == "audio_end_ms"

        await conn.conversation.item.truncate(item_id="item_missing", content_index=0, audio_end_ms=10)
        missing = await conn.recv()
        assert missing.type == "error" and missing.error.param == "item_id"
    emu.assert_valid()


async def test_response_cancel_and_cancel_without_response() -> None:
    async with (
        RealtimeEmulator(response_delay_secs=30) as emu,
        client(emu).realtime.connect(model=MODEL) as conn,
    ):
        await conn.recv()
        await conn.response.create()
        created = await conn.recv()
        assert created.type == "response.created"
        await conn.response.create()
        busy = await conn.recv()
        assert busy.type == "error" and busy.error.code == "conversation_already_has_active_response"
        await conn.response.cancel()
        done = await conn.recv()
        assert done.type == "response.done" and done.response.id == created.response.id
        assert (done.response.status, done.response.status_details.reason) == (
            "cancelled",
            "client_cancelled",
        )
        await conn.response.cancel()
        error = await conn.recv()
        assert error.type == "error" and error.error.code == "response_cancel_not_active"
    emu.assert_valid()


async def test_speech_during_a_response_cancels_it() -> None:
    async with (
        RealtimeEmulator(response_delay_secs=30) as emu,
        client(emu).realtime.connect(model=MODEL) as conn,
    ):
        await conn.recv()
        await conn.response.create()
        assert (await conn.recv()).type == "response.created"
        emu.response_delay_secs = 0  # for the next response; this one keeps its 30 s wait
        await send_audio(conn, load_24k("utt04_lights.wav"))
        events = await collect_until(conn, "response.done")
        assert types(events)[0] == "input_audio_buffer.speech_started"
        assert events[-1].response.status_details.reason == "turn_detected"
        after = await collect_until(conn, "response.done")  # the user's turn then gets its own response
        assert "input_audio_buffer.committed" in types(after)
        assert after[-1].response.status == "completed"
    emu.assert_valid()
