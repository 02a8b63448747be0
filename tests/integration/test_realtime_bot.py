"""The realtime bot end to end: the Python RTVI client over WebSocket, the bot, the Realtime emulator.

Speech from a WAV streamed in real time like a microphone reaches the emulator through the bot; the
client gets the user's transcription, the bot's audio and ``bot-output``; a barge-in truncates the server's
copy of the answer at what was played, and the context keeps exactly the words the client was told were
spoken; a function call completes and the bot speaks its result.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("openai")

from helpers.bots import ContextKeepingBot
from helpers.realtime import emulated_openai, utterance
from helpers.server import running_server, start_websocket_session
from helpers.speech import silence
from voxloop.bots import realtime as realtime_bot
from voxloop.server import ServerConfig
from voxloop.testing.realtime_emulator import RealtimeEmulator, ResponseRecord
from voxloop.testing.rtvi_client import RTVIClient, RTVIErrorResponse

pytestmark = [pytest.mark.timeout(120)]

OUT_BYTES_PER_SEC = 24000 * 2
LONG = (
    "Let me tell you about the weather across the whole country this week. In the north it will be "
    "cold and windy with some rain on most days. In the south the sun will shine and it will be warm. "
    "Along the coast there will be fog in the mornings and a fresh breeze in the afternoons."
)


@pytest.fixture
async def emu(monkeypatch: pytest.MonkeyPatch, no_leaked_tasks: None) -> AsyncIterator[RealtimeEmulator]:
    async with emulated_openai(monkeypatch) as emulator:
        yield emulator
    emulator.assert_valid()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9:']+", text.lower())


def played_text(messages: list[dict[str, Any]]) -> str:
    """What the client was told had been spoken: per segment, its latest spoken progress."""
    segments: dict[str, str] = {}
    for message in messages:
        if message["type"] == "bot-output" and message["data"].get("spoken_progress"):
            segments[message["data"]["segment_id"]] = message["data"]["spoken_progress"]["accumulated_text"]
    return " ".join(segments.values())


async def test_preload_checks_the_key(emu: RealtimeEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    await realtime_bot.preload()  # the emulator accepts its key
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    with pytest.raises(SystemExit, match="refused"):
        await realtime_bot.preload()
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(SystemExit, match="OPENAI_API_KEY"):
        await realtime_bot.preload()


async def test_spoken_question_gets_transcription_audio_and_bot_output(emu: RealtimeEmulator) -> None:
    emu.add_transcript("what's the weather like today")
    emu.add_reply("It is sunny and warm today.")
    bot = ContextKeepingBot("realtime")
    async with (
        running_server(ServerConfig(bot=bot)) as (base, _app),
        RTVIClient(await start_websocket_session(base)) as client,
    ):
        await client.ready()
        await client.stream_audio(silence(0.3) + utterance("utt01_weather.wav") + silence(1.0))
        heard = await client.wait_for("user-transcription", predicate=lambda m: m["data"]["final"])
        await client.wait_for("bot-stopped-speaking", timeout=20)
        await emu.wait_until(lambda: len(bot.contexts[0].messages) >= 3, "the reply in the context")
    assert heard["data"]["text"] == "what's the weather like today"
    sent = sum(len(base64.b64decode(e["delta"])) for e in emu.server_events_of("response.output_audio.delta"))
    assert sent > 0 and len(client.audio) >= sent  # all of the answer played (plus the transport's rounding)
    assert words(played_text(client.messages)) == words("It is sunny and warm today.")
    messages = bot.contexts[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant"], messages
    assert messages[1]["content"] == "what's the weather like today"
    assert messages[2]["content"] == "It is sunny and warm today."
    assert emu.connections[0].session["instructions"] == realtime_bot.SYSTEM_PROMPT


async def test_barge_in_truncates_at_what_was_played(emu: RealtimeEmulator) -> None:
    emu.add_transcript("tell me about the weather")
    emu.add_reply(LONG)
    emu.add_transcript("stop please")
    emu.add_reply("Sure.")
    bot = ContextKeepingBot("realtime")
    async with (
        running_server(ServerConfig(bot=bot)) as (base, _app),
        RTVIClient(await start_websocket_session(base)) as client,
    ):
        await client.ready()
        await client.stream_audio(silence(0.3) + utterance("utt01_weather.wav") + silence(1.0))
        await client.wait_for("bot-started-speaking", timeout=20)
        await client.wait_for_audio(int(2.5 * OUT_BYTES_PER_SEC), timeout=20)
        mark = len(client.messages)  # the turn's start interrupted nothing; the barge-in comes after this
        talking = asyncio.create_task(client.stream_audio(utterance("utt05_joke.wav") + silence(1.0)))
        await client.wait_for("bot-interrupted", count=len(client.of_type("bot-interrupted")) + 1, timeout=20)
        await talking
        await client.wait_for("bot-stopped-speaking", count=2, timeout=20)
        truncation = (await emu.wait_until(lambda: emu.truncations, "truncation"))[0]
        await emu.wait_until(lambda: len(bot.contexts[0].messages) >= 5, "the second turn in the context")
    index = next(i for i, m in enumerate(client.messages) if i >= mark and m["type"] == "bot-interrupted")
    audio_at_interruption = client.message_arrivals[index][1]
    # The server's copy was cut where the client's playback was: never beyond what was received, and within
    # the output's lead (0.1 s) and a chunk of what the client got.
    assert truncation.audio_end_ms < truncation.audio_ms_before
    client_ms = audio_at_interruption * 1000 // OUT_BYTES_PER_SEC
    assert abs(truncation.audio_end_ms - client_ms) <= 250, (truncation.audio_end_ms, client_ms)
    messages = bot.contexts[0].messages
    stored = messages[2]["content"]
    assert messages[2]["role"] == "assistant"
    # The context keeps the heard prefix: the words the client was told were spoken, and the emulator's own
    # account of what had been heard at the truncation point.
    assert words(stored) == words(played_text(client.messages[:index]))
    assert 0 < len(words(stored)) < len(words(LONG))
    assert abs(len(words(stored)) - len(words(truncation.heard_text))) <= 1
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"], messages
    assert messages[4]["content"] == "Sure."


async def test_function_call_completes_and_the_bot_speaks_the_result(emu: RealtimeEmulator) -> None:
    def answer(record: ResponseRecord) -> str:
        outputs = [i for i in emu.connections[0].items if i["type"] == "function_call_output"]
        return f"It is {json.loads(outputs[-1]['output'])['time']} now."

    emu.add_transcript("what time is it")
    emu.add_function_call("get_current_time", {}, call_id="call_time")
    emu.add_reply(answer)
    bot = ContextKeepingBot("realtime")
    async with (
        running_server(ServerConfig(bot=bot)) as (base, _app),
        RTVIClient(await start_websocket_session(base)) as client,
    ):
        await client.ready()
        await client.stream_audio(silence(0.3) + utterance("utt02_timer.wav") + silence(1.0))
        spoken = await client.wait_for(
            "bot-output",
            predicate=lambda m: re.search(r"\d{1,2}:\d{2}", m["data"]["text"]) is not None,
            timeout=20,
        )
        await client.wait_for("bot-stopped-speaking", timeout=20)
        await emu.wait_until(lambda: len(bot.contexts[0].messages) >= 5, "the answer in the context")
    assert client.of_type("llm-function-call-in-progress")
    messages = bot.contexts[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"], messages
    result = json.loads(messages[3]["content"])
    assert result["time"] in messages[4]["content"]
    assert result["time"] in spoken["data"]["text"]
    assert len(emu.client_events_of("response.create")) == 1  # the one after the result


async def test_clients_change_only_voice_instructions_modality_and_max_output_tokens(
    emu: RealtimeEmulator,
) -> None:
    """The model sets the price of the session: a client may not switch it. A refused or invalid change
    is answered with an error-response and changes nothing; an allowed one reaches the session."""
    async with (
        running_server(ServerConfig(bot=ContextKeepingBot("realtime"))) as (base, _app),
        RTVIClient(await start_websocket_session(base)) as client,
    ):
        await client.ready()
        conn = await emu.wait_for_connection()
        await emu.wait_for_client_event("session.update")
        with pytest.raises(RTVIErrorResponse, match="model"):
            await client.request("llm-update-settings", {"model": "gpt-realtime-mini", "voice": "cedar"})
        with pytest.raises(RTVIErrorResponse, match="modality"):
            await client.request("llm-update-settings", {"modality": "video"})
        with pytest.raises(RTVIErrorResponse, match="settings"):
            await client.request("llm-update-settings", "cedar")
        allowed = {"t": "llm-update-settings", "d": {"instructions": "Hi."}}
        await client.send_message("client-message", allowed)
        await emu.wait_until(lambda: conn.session.get("instructions") == "Hi.", "the allowed change")
        updates = emu.client_events_of("session.update")
        assert len(updates) == 2  # the first session's, and the allowed change: nothing refused was sent
        assert conn.session["audio"]["output"]["voice"] == realtime_bot.realtime_settings().voice
        assert len(emu.connections) == 1 and conn.model == realtime_bot.realtime_settings().model
