"""The realtime bot in the real web page: headless Chromium, the published client, the realtime bot (as
``voxloop run --bot realtime`` loads it) pointed at the Realtime emulator. The question and the function
call run over WebSocket and WebRTC; the barge-in over WebSocket, where the page's player is handed exactly
the audio the server sent (on WebRTC the track plays silence between answers).

The fake microphone plays espeak speech rendered at test time, once. The emulator scripts what the user
"said" (its transcription of each turn its VAD cuts) and what the bot answers; its audio reaches the page
through the bot's output transport, paced like real playback. Three conversations:

- a spoken question: the page gets the final user transcription, the bot's audio and ``bot-output`` with
  the scripted answer, and the server's context keeps both;
- a barge-in: a second utterance lands while a long answer plays; the emulator's copy of the answer is
  truncated within the audio it sent and at what the page had received, the context keeps exactly the words
  the page was told were spoken (the emulator's own heard text, to a word), and the answer's audio stops in
  the page;
- a function call: the emulator asks for ``get_current_time``, the bot runs it and speaks the time, which
  the page shows in ``bot-output``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("openai")

from helpers.bots import ContextKeepingBot
from helpers.browser import run_driver, write_fake_mic
from helpers.realtime import emulated_openai
from helpers.server import running_server
from helpers.speech import silence, spoken
from voxloop.server import ServerConfig
from voxloop.testing.realtime_emulator import RealtimeEmulator, ResponseRecord

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).parent
TRANSPORTS = ("websocket", "webrtc")
RATE = 16000
BOT_RATE = 24000
LEAD_IN = 2.0  # seconds of silence before the question: the page connects meanwhile
TRAIL = 1.0
# The WebSocket client logs that it cannot decode the interruption frame the server sends (as in
# test_conversation.py).
UNKNOWN_KIND = "Failed to deserialize incoming message Error: Unknown frame kind"
CLOCK = re.compile(r"\b\d{1,2}:\d{2}\b")
LONG = (
    "Let me tell you about the weather across the whole country this week. In the north it will be "
    "cold and windy with some rain on most days. In the south the sun will shine and it will be warm. "
    "Along the coast there will be fog in the mornings and a fresh breeze in the afternoons."
)
# The barge-in: the emulator's VAD ends the question after 0.5 s of silence and the answer (18 s of
# audio) starts playing within about a second; the second utterance starts this long after the question.
GAP = 3.5


@pytest.fixture
async def emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RealtimeEmulator]:
    async with emulated_openai(monkeypatch) as emulator:
        yield emulator
    emulator.assert_valid()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9:']+", text.lower())


def spoken_text(events: list[dict[str, Any]]) -> str:
    """What the page was told had been spoken: per bot-output segment, its latest spoken progress."""
    segments: dict[str, str] = {}
    for event in events:
        data = event["data"] if event["name"] == "onBotOutput" else None
        if data and data.get("spoken_progress"):
            segments[data["segment_id"]] = data["spoken_progress"]["accumulated_text"]
    return " ".join(text for text in segments.values() if text)


def index(events: list[dict[str, Any]], name: str, after: int = -1) -> int:
    return next(i for i, e in enumerate(events) if i > after and e["name"] == name)


def finals(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["text"] for e in events if e["name"] == "onUserTranscript" and e["data"]["final"]]


def clean(report: dict[str, Any]) -> None:
    """Nothing went wrong in the page, and it ended the call cleanly."""
    assert report["finalState"] == "disconnected"
    assert report["pageErrors"] == [] and report["pageErrorMessages"] == []
    assert [e for e in report["consoleErrors"] if UNKNOWN_KIND not in e] == []
    assert "onError" not in [e["name"] for e in report["events"]]


async def drive(script: str, tmp_path: Path, url: str, *extra: str) -> dict[str, Any]:
    args = ["--url", url, "--wav", str(tmp_path / "mic.wav"), "--profile", str(tmp_path / "profile"), *extra]
    if shots := os.environ.get("VOXLOOP_SCREENSHOTS"):
        args += ["--screenshots", str(Path(shots) / "realtime")]
    return await run_driver(HERE / script, args, timeout=90)


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
async def test_a_spoken_question_gets_transcription_audio_and_bot_output(
    browser_tools: None,
    loopback_ice: None,
    speech_workers: None,
    emu: RealtimeEmulator,
    tmp_path: Path,
    transport: str,
) -> None:
    answer = "It is sunny and warm today."
    emu.add_transcript("what's the weather like today")
    emu.add_reply(answer)
    question = await spoken("What's the weather like today?")
    write_fake_mic(tmp_path / "mic.wav", silence(LEAD_IN) + question + silence(TRAIL))
    bot = ContextKeepingBot("realtime")
    async with running_server(ServerConfig(bot=bot, transports=TRANSPORTS)) as (base, _app):
        report = await drive(
            "converse.mjs", tmp_path, f"{base}/", "--bot-sound-seconds", "0.5", "--transport", transport
        )
        await emu.wait_until(lambda: len(bot.contexts[0].messages) >= 3, "the answer in the context")

    events, played, mic = report["events"], report["audio"]["bot"], report["audio"]["mic"]
    at = {name: next(e["t"] for e in events if e["name"] == name) for name in {e["name"] for e in events}}
    assert at["onBotReady"] < mic["firstSoundAt"], "the page connected after the question had begun"
    assert finals(events) == ["what's the weather like today"]
    outputs = [e["data"] for e in events if e["name"] == "onBotOutput"]
    assert words(spoken_text(events)) == words(answer), outputs
    # The whole answer's audio reached the page's player (on WebSocket, sample for sample), speech-level,
    # after the question.
    sent = sum(len(base64.b64decode(e["delta"])) for e in emu.server_events_of("response.output_audio.delta"))
    assert sent > 0
    if transport == "websocket":
        assert played["samples"] * 2 >= sent
    assert played["soundSeconds"] >= 0.5 and played["peak"] > 0.05
    assert mic["lastSoundAt"] < played["firstSoundAt"]
    assert [who for who, _ in report["conversation"]] == ["user", "bot"], report["conversation"]
    messages = bot.contexts[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant"], messages
    assert messages[1]["content"] == "what's the weather like today"
    assert messages[2]["content"] == answer
    clean(report)


async def test_a_barge_in_truncates_at_what_the_page_received(
    browser_tools: None, speech_workers: None, emu: RealtimeEmulator, tmp_path: Path
) -> None:
    emu.add_transcript("tell me about the weather")
    emu.add_reply(LONG)
    emu.add_transcript("please stop talking now")
    emu.add_reply("Sure.")
    question = await spoken("Tell me about the weather.")
    interjection = await spoken("Please stop talking now.")
    mic_audio = silence(LEAD_IN) + question + silence(GAP) + interjection + silence(TRAIL)
    write_fake_mic(tmp_path / "mic.wav", mic_audio)
    bot = ContextKeepingBot("realtime")
    async with running_server(ServerConfig(bot=bot)) as (base, _app):
        report = await drive("barge_in.mjs", tmp_path, f"{base}/")
        truncation = (await emu.wait_until(lambda: emu.truncations, "the truncation"))[0]
        await emu.wait_until(lambda: len(bot.contexts[0].messages) >= 5, "the second turn in the context")

    events = report["events"]
    started = index(events, "onBotStartedSpeaking")
    barge_in = index(events, "onUserStartedSpeaking", started)
    stopped = index(events, "onBotStoppedSpeaking", started)  # the server may report it first
    second = index(events, "onBotStartedSpeaking", max(barge_in, stopped))
    at_barge_in = events[barge_in]["botSamples"] * 1000 // BOT_RATE  # ms of the answer the page had
    at_stop = events[stopped]["botSamples"] * 1000 // BOT_RATE
    # The second utterance's transcript comes once the emulator's VAD has ended that turn, over a second
    # after the barge-in and before the reply's audio.
    transcribed = next(
        i
        for i, e in enumerate(events)
        if i > barge_in and e["name"] == "onUserTranscript" and e["data"]["final"]
    )
    assert transcribed < second
    before_reply = events[transcribed]["botSamples"] * 1000 // BOT_RATE
    quiet_ms = events[transcribed]["t"] - events[stopped]["t"]
    heard = spoken_text(events[:stopped])
    stored = bot.contexts[0].messages[2]
    print(
        f"\nbarge-in: truncated at {truncation.audio_end_ms} ms of {truncation.audio_ms_before} ms sent; "
        f"the page had {at_barge_in} ms at its barge-in, {at_stop} ms when the answer stopped, "
        f"{before_reply} ms {quiet_ms} ms later (the second transcript); heard {truncation.heard_text!r}; "
        f"stored {stored['content']!r}"
    )

    # The emulator's copy was cut inside what it sent, and never beyond what the page received of the answer
    # (the server sends 0.1 s ahead of its playback clock, so the cut is a little behind that).
    assert 0 < truncation.audio_end_ms < truncation.audio_ms_before
    assert 0 <= at_stop - truncation.audio_end_ms <= 500, (truncation.audio_end_ms, at_stop)
    # The answer's audio stopped in the page: little more after the user's turn started, nothing from its
    # stop to the second utterance's transcript (seconds later), and far less than the whole answer.
    assert 0 <= at_stop - at_barge_in <= 500
    assert before_reply == at_stop and quiet_ms > 500
    assert at_stop < truncation.audio_ms_before - 5000
    # The context keeps the heard prefix: the words the page was told were spoken, and (to a word at the
    # cut) the emulator's account of what had been heard at the truncation point.
    assert stored["role"] == "assistant"
    assert words(stored["content"]) == words(heard)
    assert 0 < len(words(stored["content"])) < len(words(LONG))
    assert abs(len(words(stored["content"])) - len(words(truncation.heard_text))) <= 1
    cut = len(words(truncation.heard_text)) - 1  # the word at the cut may count on one side only
    assert words(truncation.heard_text)[:cut] == words(stored["content"])[:cut]
    messages = bot.contexts[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"], messages
    assert messages[3]["content"] == "please stop talking now" and messages[4]["content"] == "Sure."
    assert finals(events) == ["tell me about the weather", "please stop talking now"]
    view = report["conversation"]
    assert [who for who, _ in view] == ["user", "bot", "user", "bot"], view
    clean(report)


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
async def test_a_function_call_completes_and_the_bot_speaks_the_time(
    browser_tools: None,
    loopback_ice: None,
    speech_workers: None,
    emu: RealtimeEmulator,
    tmp_path: Path,
    transport: str,
) -> None:
    def answer(record: ResponseRecord) -> str:
        outputs = [i for i in emu.connections[0].items if i["type"] == "function_call_output"]
        return f"It is {json.loads(outputs[-1]['output'])['time']} now."

    emu.add_transcript("what time is it")
    emu.add_function_call("get_current_time", {}, call_id="call_time")
    emu.add_reply(answer)
    question = await spoken("What is the current time?")
    write_fake_mic(tmp_path / "mic.wav", silence(LEAD_IN) + question + silence(TRAIL))
    bot = ContextKeepingBot("realtime")
    async with running_server(ServerConfig(bot=bot, transports=TRANSPORTS)) as (base, _app):
        report = await drive(
            "converse.mjs", tmp_path, f"{base}/", "--bot-sound-seconds", "0.5", "--transport", transport
        )
        await emu.wait_until(lambda: len(bot.contexts[0].messages) >= 5, "the answer in the context")

    events = report["events"]
    assert finals(events) == ["what time is it"]
    calls = [e["name"] for e in events if e["name"].startswith("onLLMFunctionCall")]
    # The bot reports the call's start, progress and end (the client fires one callback for each).
    assert calls == [f"onLLMFunctionCall{step}" for step in ("Started", "InProgress", "Stopped")], calls
    messages = bot.contexts[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"], messages
    assert messages[2]["tool_calls"][0]["function"]["name"] == "get_current_time"
    time = json.loads(messages[3]["content"])["time"]
    shown = spoken_text(events)
    assert CLOCK.search(shown) and time in shown, shown
    assert words(messages[4]["content"]) == words(shown) == words(f"It is {time} now.")
    assert report["audio"]["bot"]["soundSeconds"] >= 0.5
    assert len(emu.client_events_of("response.create")) == 1  # the one after the result
    clean(report)
