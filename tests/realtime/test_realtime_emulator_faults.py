"""The Realtime emulator's checks and faults: invalid client events, injected errors, dropped connections,
slow responses, authentication, and its own server-event validation."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

pytest.importorskip("openai")

from openai import AsyncOpenAI
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from voxloop.testing.realtime_emulator import EmulatorBug, RealtimeEmulator
from voxloop.testing.realtime_emulator._validate import check_server_event

MODEL = "gpt-realtime"


def client(emu: RealtimeEmulator, api_key: str = "test-key") -> AsyncOpenAI:
    return AsyncOpenAI(base_url=emu.base_url, api_key=api_key)


async def test_invalid_client_events_are_recorded_and_answered_with_errors() -> None:
    async with RealtimeEmulator() as emu, client(emu).realtime.connect(model=MODEL) as conn:
        await conn.recv()
        await conn.send_raw(
            json.dumps({"type": "conversation.item.truncate", "item_id": "x", "event_id": "ev1"})
        )
        missing = await conn.recv()
        await conn.send_raw(
            json.dumps({"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}})
        )  # a Beta-era field
        unknown = await conn.recv()
        await conn.send_raw("not json")
        unparsable = await conn.recv()
        await conn.send_raw(json.dumps({"type": "response.audio.delta"}))
        wrong_type = await conn.recv()
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "still fine"}],
            }
        )
        still_working = await conn.recv()

    assert missing.type == "error" and missing.error.type == "invalid_request_error"
    assert (missing.error.code, missing.error.param, missing.error.event_id) == (
        "missing_required_parameter",
        "audio_end_ms",
        "ev1",
    )
    assert (unknown.error.code, unknown.error.param) == ("unknown_parameter", "session.voice")
    assert unparsable.error.code == "invalid_json"
    assert (wrong_type.error.code, wrong_type.error.param) == ("invalid_value", "type")
    assert still_working.type == "conversation.item.added"
    assert len(emu.invalid_client_events) == 4
    with pytest.raises(AssertionError, match="audio_end_ms"):
        emu.assert_valid()


async def test_injected_error_reaches_the_client() -> None:
    async with RealtimeEmulator() as emu, client(emu).realtime.connect(model=MODEL) as conn:
        await conn.recv()
        await emu.wait_for_connection()
        await emu.inject_error("Rate limit reached", type="rate_limit_error", code="rate_limit_exceeded")
        error = await conn.recv()
        assert error.type == "error"
        assert (error.error.type, error.error.code, error.error.message) == (
            "rate_limit_error",
            "rate_limit_exceeded",
            "Rate limit reached",
        )
        await conn.response.create()  # the session goes on
        assert (await conn.recv()).type == "response.created"
    emu.assert_valid()


async def test_failed_response() -> None:
    async with RealtimeEmulator() as emu, client(emu).realtime.connect(model=MODEL) as conn:
        await conn.recv()
        emu.fail_next_response("Upstream overloaded", code="server_overloaded")
        await conn.response.create()
        assert (await conn.recv()).type == "response.created"
        done = await conn.recv()
        assert done.type == "response.done" and done.response.status == "failed"
        assert done.response.status_details.error.code == "server_overloaded"
    emu.assert_valid()


async def test_connection_dropped_now_and_mid_response() -> None:
    async with RealtimeEmulator() as emu:
        async with client(emu).realtime.connect(model=MODEL) as conn:
            await conn.recv()
            await emu.wait_for_connection()
            emu.drop_connection()
            with pytest.raises(ConnectionClosedError):
                await conn.recv()
        async with client(emu).realtime.connect(model=MODEL) as conn:
            await conn.recv()
            emu.drop_connection(when="response.output_audio.delta")
            await conn.response.create()
            seen = []
            with pytest.raises(ConnectionClosedError):
                while True:
                    seen.append((await conn.recv()).type)
            assert seen[-1] == "response.output_audio.delta" and "response.done" not in seen
        await emu.wait_until(lambda: not emu.open_connections, "both connections closed")
    assert emu.connections[1].responses[0].status != "completed"


async def test_response_delay_holds_back_the_first_output() -> None:
    async with (
        RealtimeEmulator(response_delay_secs=0.3) as emu,
        client(emu).realtime.connect(model=MODEL) as conn,
    ):
        await conn.recv()
        await conn.response.create()
        assert (await conn.recv()).type == "response.created"
        started = time.monotonic()
        first = await conn.recv()
        assert first.type == "response.output_item.added"
        assert time.monotonic() - started >= 0.25
    emu.assert_valid()


async def test_wrong_api_key_gets_an_error_event_and_close() -> None:
    async with (
        RealtimeEmulator() as emu,
        client(emu, api_key="sk-wrong").realtime.connect(model=MODEL) as conn,
    ):
        error = await conn.recv()
        assert error.type == "error" and error.error.code == "invalid_api_key"
        with pytest.raises(ConnectionClosedError) as closed:
            await conn.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 3000
    assert emu.connections[0].client_events == []


async def test_wrong_api_key_rejected_at_handshake_in_http_mode() -> None:
    async with RealtimeEmulator(auth_failure="http") as emu:
        with pytest.raises(InvalidStatus) as refused:
            async with client(emu, api_key="sk-wrong").realtime.connect(model=MODEL):
                pass
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body)["error"]["code"] == "invalid_api_key"
        assert emu.rejected_handshakes and not emu.connections


async def test_beta_protocol_header_is_flagged() -> None:
    async with RealtimeEmulator() as emu:
        sdk = client(emu)
        async with sdk.realtime.connect(model=MODEL, extra_headers={"OpenAI-Beta": "realtime=v1"}) as conn:
            error = await conn.recv()
            assert error.type == "error" and error.error.code == "beta_protocol_requested"
    with pytest.raises(AssertionError, match="Beta"):
        emu.assert_valid()


def test_server_events_are_checked_against_the_sdk_schema() -> None:
    check_server_event({"type": "input_audio_buffer.cleared", "event_id": "event_1"})
    with pytest.raises(EmulatorBug):
        check_server_event({"type": "input_audio_buffer.speech_started", "event_id": "e", "item_id": "i"})
    with pytest.raises(EmulatorBug, match="audio_start"):
        check_server_event(
            {
                "type": "input_audio_buffer.speech_started",
                "event_id": "e",
                "item_id": "i",
                "audio_start_ms": 1,
                "audio_start": 1,
            }
        )
    with pytest.raises(EmulatorBug):
        check_server_event({"type": "response.audio.delta", "event_id": "e"})  # a Beta-era name


async def test_wait_helpers_follow_the_records() -> None:
    async with RealtimeEmulator() as emu, client(emu).realtime.connect(model=MODEL) as conn:
        waiter = asyncio.ensure_future(emu.wait_for_server_event("response.done"))
        await conn.response.create()
        done = await waiter
        assert done["response"]["status"] == "completed"
        async with asyncio.timeout(10):  # drain what the client has not read, so its close is prompt
            while (await conn.recv()).type != "response.done":
                pass
        created = await emu.wait_for_client_event("response.create")
        assert created.event is not None and created.problem is None
