"""One trace per conversation, checked on a real spoken conversation through the default bot.

The default offline bot (Silero VAD, Whisper tiny.en, the demo agent with its function call, espeak-ng)
answers a spoken "What time is it?" over the real WebSocket wire; the spans go to the OpenTelemetry
SDK's in-memory exporter. The test checks the span tree, the parent links, and that the turn's
attributes hold real figures: the latency parts add up to the voice-to-voice total, and that total
matches the spans it is made of.
"""

from __future__ import annotations

import re

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from helpers.server import running_server, start_websocket_session
from helpers.speech import silence, spoken
from voxloop.bots import load_bot
from voxloop.server import ServerConfig
from voxloop.telemetry import Telemetry
from voxloop.telemetry.metrics import ServerMetrics
from voxloop.testing.rtvi_client import RTVIClient

pytestmark = pytest.mark.timeout(120)

MS = 1e6  # span times are in nanoseconds


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("VOXLOOP_TTS", "espeak")


def traced() -> tuple[Telemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(ServerMetrics(CollectorRegistry()), provider.get_tracer("test"))
    return telemetry, exporter


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def ms(span: ReadableSpan) -> float:
    assert span.start_time is not None and span.end_time is not None
    return (span.end_time - span.start_time) / MS


async def test_a_spoken_question_makes_one_trace_with_every_service_in_its_turn(speech_workers) -> None:
    telemetry, exporter = traced()
    question = await spoken("What time is it?")
    async with (
        running_server(ServerConfig(bot=load_bot("default"), telemetry=telemetry)) as (base, _app),
        RTVIClient(await start_websocket_session(base)) as client,
    ):
        await client.ready()
        await client.stream_audio(silence(0.3) + question + silence(1.0))
        await client.wait_for(
            "bot-output", predicate=lambda m: re.search(r"\d{1,2}:\d{2}", m["data"]["text"]), timeout=20
        )
        await client.wait_for("bot-stopped-speaking", timeout=20)
    spans = list(exporter.get_finished_spans())
    sessions = [s for s in spans if s.name == "voxloop.session"]
    assert len(sessions) == 1 and sessions[0].parent is None
    session = sessions[0]
    assert session.context is not None
    assert {s.context.trace_id for s in spans if s.context} == {session.context.trace_id}  # one trace
    assert session.attributes is not None and session.attributes["voxloop.transport"] == "websocket"
    assert session.attributes["voxloop.session.turns"] == 1

    (turn,) = children(spans, session)
    assert turn.name == "voxloop.turn"
    attrs = dict(turn.attributes or {})
    assert attrs["voxloop.turn.number"] == 1
    assert attrs["voxloop.turn.interrupted"] is False
    assert attrs["voxloop.turn.user_words"] >= 3  # "What time is it?" as Whisper heard it
    assert attrs["voxloop.turn.bot_words"] >= 3  # the spoken answer, as played

    # The voice-to-voice latency and its parts: they add up, and each is a real, plausible figure.
    total = attrs["voxloop.latency.voice_to_voice_ms"]
    parts = {k: attrs[f"voxloop.latency.{k}_ms"] for k in ("turn_detection", "llm", "tts", "output")}
    assert abs(sum(parts.values()) - total) < 2.0, (parts, total)
    assert parts["turn_detection"] > 500  # the turn waits for 0.7 s of silence (and for Whisper, below)
    assert all(value >= 0 for value in parts.values())

    inside = children(spans, turn)
    names = [s.name for s in inside]
    for expected in ("voxloop.user_speech", "voxloop.stt", "voxloop.turn_detection", "voxloop.tts"):
        assert expected in names, names
    llm = [s for s in inside if (s.attributes or {}).get("gen_ai.operation.name") == "chat"]
    assert len(llm) == 2, names  # the call for the time, then the answer that quotes it
    (tool,) = [s for s in inside if s.name == "execute_tool get_current_time"]
    assert tool.attributes is not None and tool.attributes["gen_ai.tool.name"] == "get_current_time"
    assert tool.status.is_ok
    # Order in time: the first response asks for the call, the call runs, the second response speaks.
    assert llm[0].end_time <= tool.start_time <= tool.end_time <= llm[1].start_time  # type: ignore[operator]
    assert [e.name for e in llm[1].events] == ["first_token"]
    tts = [s for s in inside if s.name == "voxloop.tts"]
    assert all([e.name for e in s.events] == ["first_audio"] for s in tts)
    assert all("voxloop.tts.ttfb_ms" in (s.attributes or {}) for s in tts)

    # The parts are the spans' own times: the turn detection span is that part, the speech ended
    # where it starts, and the turn began with the user's speech.
    (detection,) = [s for s in inside if s.name == "voxloop.turn_detection"]
    assert abs(ms(detection) - parts["turn_detection"]) < 1.0
    stt = [s for s in inside if s.name == "voxloop.stt"]
    assert detection.end_time >= max(s.end_time for s in stt)  # type: ignore[type-var]  # the words were in
    speech = [s for s in inside if s.name == "voxloop.user_speech"]
    assert speech[-1].end_time == detection.start_time
    assert turn.start_time == min(s.start_time for s in speech)  # type: ignore[type-var]
    assert 800 < sum(ms(s) for s in speech) < 2500  # about 1.2 s of espeak speech
    # The LLM part runs from the turn's end to the answer's first token (through the function call).
    first_token = llm[1].events[0].timestamp
    assert abs((first_token - detection.end_time) / MS - parts["llm"]) < 1.0  # type: ignore[operator]
    for span in inside:
        assert turn.start_time <= span.start_time <= turn.end_time + 2000 * MS  # type: ignore[operator]
