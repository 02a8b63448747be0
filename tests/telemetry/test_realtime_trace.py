"""The realtime bot's trace and metrics, against the OpenAI Realtime emulator: a barge-in shows.

The user asks, the speech-to-speech model's long answer plays, the user talks over it: the first turn
is marked interrupted with only the played words counted, the second is answered, both turns' model
responses are ``chat`` spans marked realtime, and the interruption is counted once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("openai")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from helpers.realtime import emulated_openai, utterance
from helpers.server import running_server, start_websocket_session
from helpers.speech import silence
from voxloop.bots import load_bot
from voxloop.server import ServerConfig
from voxloop.telemetry import Telemetry
from voxloop.telemetry.metrics import ServerMetrics
from voxloop.testing.realtime_emulator import RealtimeEmulator
from voxloop.testing.rtvi_client import RTVIClient

pytestmark = [pytest.mark.timeout(120)]

OUT_BYTES_PER_SEC = 24000 * 2
LONG = (
    "Let me tell you about the weather across the whole country this week. In the north it will be "
    "cold and windy with some rain on most days. In the south the sun will shine and it will be warm."
)


@pytest.fixture
async def emu(monkeypatch: pytest.MonkeyPatch, no_leaked_tasks: None) -> AsyncIterator[RealtimeEmulator]:
    async with emulated_openai(monkeypatch) as emulator:
        yield emulator


async def test_a_barge_in_on_the_realtime_bot_is_an_interrupted_turn(emu: RealtimeEmulator) -> None:
    emu.add_transcript("tell me about the weather")
    emu.add_reply(LONG)
    emu.add_transcript("stop please")
    emu.add_reply("Sure.")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    telemetry = Telemetry(ServerMetrics(registry), provider.get_tracer("test"))
    async with (
        running_server(ServerConfig(bot=load_bot("realtime"), telemetry=telemetry)) as (base, app),
        RTVIClient(await start_websocket_session(base)) as client,
    ):
        await client.ready()
        await client.stream_audio(silence(0.3) + utterance("utt01_weather.wav") + silence(1.0))
        await client.wait_for("bot-started-speaking", timeout=20)
        await client.wait_for_audio(int(2.5 * OUT_BYTES_PER_SEC), timeout=20)
        talking = asyncio.create_task(client.stream_audio(utterance("utt05_joke.wav") + silence(1.0)))
        await client.wait_for("bot-interrupted", count=len(client.of_type("bot-interrupted")) + 1, timeout=20)
        await talking
        await client.wait_for("bot-stopped-speaking", count=2, timeout=20)
    spans = exporter.get_finished_spans()
    turns = sorted((s for s in spans if s.name == "voxloop.turn"), key=lambda s: s.start_time or 0)
    assert len(turns) == 2
    first, second = (dict(t.attributes or {}) for t in turns)
    assert first["voxloop.turn.interrupted"] is True
    assert second["voxloop.turn.interrupted"] is False
    assert first["voxloop.turn.user_words"] == 5  # "tell me about the weather"
    assert 0 < first["voxloop.turn.bot_words"] < len(LONG.split())  # only what was played counted
    assert second["voxloop.turn.bot_words"] == 1
    for attrs in (first, second):
        total = attrs["voxloop.latency.voice_to_voice_ms"]
        parts = [
            v for k, v in attrs.items() if k.startswith("voxloop.latency.") and not k.endswith("voice_ms")
        ]
        assert 0 < total < 5000 and abs(sum(parts) - total) < 2.0, attrs
    responses = [s for s in spans if (s.attributes or {}).get("voxloop.realtime") is True]
    assert len(responses) >= 2 and all(s.name.startswith("chat") for s in responses)
    for response in responses:  # the GenAI conventions' token usage, from the model's response.done
        usage = response.attributes or {}
        assert usage["gen_ai.provider.name"] == "openai"
        assert usage["gen_ai.usage.input_tokens"] > 0 and usage["gen_ai.usage.output_tokens"] > 0, usage
    tokens = registry.get_sample_value(
        "voxloop_llm_tokens_total", {"model": "gpt-realtime", "type": "output"}
    )
    assert tokens is not None and tokens > 0
    assert registry.get_sample_value("voxloop_interruptions_total") == 1
    assert registry.get_sample_value("voxloop_turns_total") == 2
    assert registry.get_sample_value(
        "voxloop_sessions_failed_total", {"transport": "websocket", "stage": "run"}
    ) in (
        None,
        0.0,
    )
