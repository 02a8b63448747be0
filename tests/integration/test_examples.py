"""The example bots in examples/ load, build, and (where they need no cloud service) hold a conversation.

The restaurant bot runs against the local OpenAI-compatible test server with a scripted model, so its
function calls are exercised through the real SDK, the real speech models and the real transport.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.server import running_server, start_websocket_session
from helpers.speech import silence, spoken
from voxloop.bots import load_bot
from voxloop.server import ServerConfig
from voxloop.testing.openai_server import OpenAITestServer
from voxloop.testing.rtvi_client import RTVIClient

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXLOOP_TTS", "espeak")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


async def test_dictation_bot_notes_what_was_said(speech_workers) -> None:
    bot = load_bot(str(EXAMPLES / "dictation_bot.py"))
    note = await spoken("Remember to call the dentist.")
    async with (
        running_server(ServerConfig(bot=bot)) as (base, _app),
        RTVIClient(await start_websocket_session(base)) as client,
    ):
        await client.ready()
        await client.stream_audio(silence(0.3) + note + silence(1.0))
        await client.wait_for("bot-stopped-speaking", timeout=20)
        answer = await client.request("get-note")
    assert {"call", "dentist"} <= set(words(" ".join(answer["note"])))
    spoken_back = " ".join(m["data"]["text"] for m in client.of_type("bot-tts-text"))
    assert {"noted", "dentist"} <= set(words(spoken_back))


async def test_restaurant_bot_checks_a_table_through_its_function(
    speech_workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with OpenAITestServer() as llm_server:
        monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", llm_server.api_key or "")
        arguments = {"day": "Friday", "time": "19:30", "guests": 2}
        llm_server.script["chat"] = [
            {"tool_calls": [{"name": "check_availability", "arguments": json.dumps(arguments)}]},
            {"text": "Yes, we have a table for two on Friday at half past seven."},
        ]
        bot = load_bot(str(EXAMPLES / "restaurant_bot.py"))
        question = await spoken("Do you have a table for two on Friday?")
        async with (
            running_server(ServerConfig(bot=bot)) as (base, _app),
            RTVIClient(await start_websocket_session(base)) as client,
        ):
            await client.ready()
            await client.stream_audio(silence(0.3) + question + silence(1.0))
            await client.wait_for(
                "bot-tts-text", predicate=lambda m: "Friday" in m["data"]["text"], timeout=30
            )
        assert llm_server.invalid_requests == []
        second = llm_server.requests[-1].body
        tool_message = next(m for m in second["messages"] if m["role"] == "tool")
        assert json.loads(tool_message["content"])["available"] is True
        assert "table" in words(second["messages"][1]["content"])  # what Whisper heard went to the LLM


def test_browser_tools_bot_loads() -> None:
    assert callable(load_bot(str(EXAMPLES / "browser_tools_bot.py")))


async def test_browser_tools_bot_calls_a_function_on_the_client(
    speech_workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with OpenAITestServer() as llm_server:
        monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", llm_server.api_key or "")
        llm_server.script["chat"] = [
            {"tool_calls": [{"id": "call_size", "name": "get_screen_size", "arguments": {}}]},
            {"text": "Your window is 1280 pixels wide."},
        ]
        bot = load_bot(str(EXAMPLES / "browser_tools_bot.py"))
        async with (
            running_server(ServerConfig(bot=bot)) as (base, _app),
            RTVIClient(await start_websocket_session(base)) as client,
        ):
            await client.ready()
            await client.send_text("How big is my screen?", run_immediately=True)
            call = await client.wait_for("llm-function-call-in-progress", timeout=20)
            assert call["data"]["function_name"] == "get_screen_size"  # the "full" report level
            await client.send_function_call_result(
                "get_screen_size", call["data"]["tool_call_id"], {}, {"width": 1280, "height": 720}
            )
            await client.wait_for("bot-tts-text", predicate=lambda m: "1280" in m["data"]["text"], timeout=20)
        assert llm_server.invalid_requests == []
        tool_message = next(m for m in llm_server.requests[-1].body["messages"] if m["role"] == "tool")
        assert json.loads(tool_message["content"]) == {"width": 1280, "height": 720}
