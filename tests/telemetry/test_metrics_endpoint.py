"""``/metrics`` of the dev server, read with prometheus_client's own parser after a few real sessions.

One spoken conversation through the default bot (turn latencies, a function call), one client that
connects and leaves, one bot that cannot be created and one that fails with a fatal error: the session
counters, the live gauge and the histograms move exactly as those sessions did.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from helpers.server import running_server, start_websocket_session
from helpers.speech import silence, spoken
from voxloop.bots import SessionInfo, load_bot
from voxloop.frames import Frame, StartFrame
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.rtvi import RTVIProcessor
from voxloop.server import ServerConfig
from voxloop.telemetry import Telemetry
from voxloop.telemetry.metrics import ServerMetrics
from voxloop.testing.rtvi_client import RTVIClient

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("VOXLOOP_TTS", "espeak")


class Scrape:
    """One scrape of ``/metrics``, parsed by prometheus_client's parser."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when the series does not exist yet (a counter never incremented)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str) -> float:
        """The sum over every label set of ``name``."""
        return sum(v for (n, _), v in self.samples.items() if n == name)


async def scrape(base: str) -> Scrape:
    async with httpx.AsyncClient() as http:
        reply = await http.get(f"{base}/metrics")
    reply.raise_for_status()
    assert reply.headers["content-type"].startswith("text/plain")
    return Scrape(reply.text)


class FailsAtStart(FrameProcessor):
    """Reports a fatal error as soon as the pipeline starts (a service that cannot log in)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_error("the speech service refused the request", fatal=True)


class Bots:
    """The default bot, then a bot that fails when created, then one that fails when it runs."""

    def __init__(self) -> None:
        self.default = load_bot("default")
        self.next = "default"

    def __call__(self, transport: Any, session: SessionInfo) -> Any:
        if self.next == "broken":
            raise RuntimeError("the bot's configuration is broken")
        if self.next == "fatal":
            pipeline = Pipeline([RTVIProcessor(), transport.input(), FailsAtStart(), transport.output()])
            return PipelineTask(pipeline, name=f"fatal-{session.session_id}")
        return self.default(transport, session)


async def wait_until_no_session(app: Any) -> None:
    await asyncio.wait_for(app.state.sessions.empty.wait(), 10)


async def test_metrics_follow_sessions_turns_and_failures(speech_workers) -> None:
    telemetry = Telemetry(ServerMetrics(CollectorRegistry()))
    bots = Bots()
    question = await spoken("What time is it?")
    ws = {"transport": "websocket"}
    async with running_server(ServerConfig(bot=bots, telemetry=telemetry)) as (base, app):
        before = await scrape(base)
        assert before.value("voxloop_sessions_live", **ws) == 0
        assert before.value("voxloop_sessions_started_total", **ws) == 0

        # 1. A spoken question, answered through a function call.
        async with RTVIClient(await start_websocket_session(base)) as client:
            await client.ready()
            during = await scrape(base)
            await client.stream_audio(silence(0.3) + question + silence(1.0))
            await client.wait_for(
                "bot-output", predicate=lambda m: re.search(r"\d{1,2}:\d{2}", m["data"]["text"]), timeout=20
            )
            await client.wait_for("bot-stopped-speaking", timeout=20)
        await wait_until_no_session(app)
        assert during.value("voxloop_sessions_live", **ws) == 1
        after_talk = await scrape(base)

        # 2. A client that connects and leaves without a word.
        async with RTVIClient(await start_websocket_session(base)) as client:
            await client.ready()
        await wait_until_no_session(app)

        # 3. A bot that cannot be created.
        bots.next = "broken"
        async with RTVIClient(await start_websocket_session(base)) as client:
            await client.wait_for("error")
        await wait_until_no_session(app)

        # 4. A bot that fails with a fatal error once running.
        bots.next = "fatal"
        async with RTVIClient(await start_websocket_session(base)) as client:
            await client.wait_for("error")
        await wait_until_no_session(app)
        end = await scrape(base)

    # Sessions: three ran (the broken one never started), all ended, two failed in different ways.
    assert end.value("voxloop_sessions_started_total", **ws) == 3
    assert end.value("voxloop_sessions_ended_total", **ws) == 3
    assert end.value("voxloop_sessions_live", **ws) == 0
    assert end.value("voxloop_sessions_failed_total", stage="start", **ws) == 1
    assert end.value("voxloop_sessions_failed_total", stage="run", **ws) == 1
    assert end.value("voxloop_errors_total", kind="unknown", fatal="true") == 1
    assert end.value("voxloop_session_duration_seconds_count") == 3

    # The conversation's turn: every latency histogram got its one observation, with a real value.
    assert after_talk.value("voxloop_turns_total") == 1
    assert end.value("voxloop_turns_total") == 1  # the silent and the failed sessions had no turn
    v2v_count = after_talk.value("voxloop_voice_to_voice_seconds_count")
    v2v_sum = after_talk.value("voxloop_voice_to_voice_seconds_sum")
    assert v2v_count == 1 and 0.5 < v2v_sum < 6.0  # at least the 0.7 s the turn waits for silence
    assert after_talk.value("voxloop_voice_to_voice_seconds_bucket", le="+Inf") == 1
    assert after_talk.value("voxloop_voice_to_voice_seconds_bucket", le="0.05") == 0
    assert after_talk.value("voxloop_stt_seconds_count") >= 1
    assert 0 < after_talk.value("voxloop_stt_seconds_sum") < 5.0
    model = {"model": "voxloop-demo-agent"}
    assert after_talk.value("voxloop_llm_ttfb_seconds_count", **model) == 2  # the call, then the answer
    assert after_talk.total("voxloop_tts_ttfb_seconds_count") >= 1
    assert 0 < after_talk.total("voxloop_tts_ttfb_seconds_sum") < 5.0
    call = {"function": "get_current_time"}
    assert after_talk.value("voxloop_function_calls_total", outcome="ok", **call) == 1
    assert after_talk.value("voxloop_function_call_seconds_count", **call) == 1
    assert after_talk.value("voxloop_function_calls_total", outcome="error", **call) == 0
    assert after_talk.value("voxloop_interruptions_total") == 0
    # The shared espeak worker is idle between sessions.
    assert end.value("voxloop_speech_worker_queue_depth", engine="espeak") == 0


async def test_a_session_the_server_ends_on_a_drain_is_not_a_failure() -> None:
    telemetry = Telemetry(ServerMetrics(CollectorRegistry()))
    ws = {"transport": "websocket"}
    async with running_server(ServerConfig(bot=load_bot("echo"), telemetry=telemetry)) as (base, app):
        async with RTVIClient(await start_websocket_session(base)) as client:
            await client.ready()
            await app.state.sessions.end_all("the server is shutting down")
            told = await client.wait_for("error")
        await wait_until_no_session(app)
        end = await scrape(base)
    assert told["data"]["fatal"] is True  # the client was told why
    assert end.value("voxloop_sessions_ended_total", **ws) == 1
    assert end.value("voxloop_sessions_failed_total", stage="run", **ws) == 0
    assert end.total("voxloop_errors_total") == 0
