"""Log lines: each line of a session names it, JSON for shippers, and no secret ever gets through."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers.server import running_server, start_websocket_session
from voxloop.bots import SessionInfo
from voxloop.cli import main
from voxloop.frames import Frame, LLMMessagesAppendFrame, StartFrame, TranscriptionFrame
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.rtvi import RTVIProcessor
from voxloop.server import ServerConfig
from voxloop.telemetry import Telemetry, configure_logging, redact
from voxloop.telemetry.logs import JsonFormatter
from voxloop.testing.rtvi_client import RTVIClient

SECRET_KEY = "sk-proj-Zx81hQ0pL4mN7vB2cX9dK3sT6wY5uR1e"


@contextmanager
def root_logger_restored() -> Iterator[logging.Logger]:
    """The root logger, with its handlers and level put back as they were when the block ends."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        yield root
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """voxloop's JSON logging into a buffer, for the test only (the root logger is put back after)."""
    with root_logger_restored():
        stream = io.StringIO()
        configure_logging(logging.DEBUG, "json", stream)
        yield stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class Chatty(FrameProcessor):
    """Logs from the pipeline's own tasks: at start, and for each typed message in its queue's task."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, StartFrame):
            logging.getLogger("voxloop.test").info("chatty started")
        elif isinstance(frame, LLMMessagesAppendFrame):  # a client's send-text, in this processor's task
            text = frame.messages[0]["content"]
            logging.getLogger("voxloop.test").info("chatty saw %s", text)
            await self.push_frame(TranscriptionFrame(text, finalized=True), direction)  # tells the client
        await self.push_frame(frame, direction)


class ChattyBot:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, transport: Any, session: SessionInfo) -> PipelineTask:
        self.ids.append(session.session_id)
        logging.getLogger("voxloop.test").info("creating the bot")
        pipeline = Pipeline([RTVIProcessor(), transport.input(), Chatty(queued=True), transport.output()])
        return PipelineTask(pipeline, name=f"chatty-{session.session_id}")


async def test_every_line_of_a_session_carries_its_id_even_with_two_at_once(json_logs) -> None:
    bot = ChattyBot()
    async with running_server(ServerConfig(bot=bot, telemetry=Telemetry())) as (base, app):
        async with (
            RTVIClient(await start_websocket_session(base)) as one,
            RTVIClient(await start_websocket_session(base)) as two,
        ):
            await asyncio.gather(one.ready(), two.ready())
            await one.send_text("hello from one")
            await two.send_text("hello from two")
            await asyncio.gather(one.wait_for("user-transcription"), two.wait_for("user-transcription"))
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
    records = lines(json_logs)
    assert len(set(bot.ids)) == 2
    for session in bot.ids:
        mine = [r for r in records if r["session_id"] == session]
        messages = [r["message"] for r in mine]
        assert "creating the bot" in messages
        assert "chatty started" in messages
        assert (
            f"session {session} ended (1 running)" in messages
            or f"session {session} ended (0 running)" in messages
        )
        assert any(m.startswith(f"session {session} started") for m in messages)
    # Lines that name a session are that session's lines: nothing leaks into the other one's.
    for record in records:
        for session in bot.ids:
            if f"session {session}" in record["message"]:
                assert record["session_id"] == session, record
    # The text each client typed was logged in its own session's task.
    said = {r["session_id"]: r["message"] for r in records if r["message"].startswith("chatty saw")}
    assert said == {
        bot.ids[0]: "chatty saw hello from one",
        bot.ids[1]: "chatty saw hello from two",
    } or said == {
        bot.ids[1]: "chatty saw hello from one",
        bot.ids[0]: "chatty saw hello from two",
    }
    assert {r["level"] for r in records} <= {"DEBUG", "INFO", "WARNING", "ERROR"}
    assert all(r["time"].endswith("+00:00") for r in records)


def test_secrets_are_redacted_in_text_and_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok_live_9f8e7d6c5b4a")
    logger = logging.getLogger("voxloop.test.secrets")
    for fmt in ("text", "json"):
        stream = io.StringIO()
        with root_logger_restored():
            configure_logging(logging.INFO, fmt, stream)
            logger.info("calling the API with key %s", SECRET_KEY)
            logger.info("headers: {'Authorization': 'Bearer abcdefgh12345678', 'x': 1}")
            logger.info("client at ws://127.0.0.1:7860/ws?token=Q2hhbmdlTWVQbGVhc2U&x=1")
            logger.info('config {"api_key": "plain-secret-value", "model": "gpt-4.1-mini"}')
            logger.info("the other service: tok_live_9f8e7d6c5b4a")
            try:
                raise RuntimeError(f"401 Unauthorized: Incorrect API key provided: {SECRET_KEY}")
            except RuntimeError:
                logger.exception("the LLM failed")
        out = stream.getvalue()
        for secret in (
            SECRET_KEY,
            "abcdefgh12345678",
            "Q2hhbmdlTWVQbGVhc2U",
            "plain-secret-value",
            "tok_live_9f8e7d6c5b4a",
        ):
            assert secret not in out, (fmt, out)
        assert out.count("[REDACTED]") >= 7, out
        assert "gpt-4.1-mini" in out and "x=1" in out  # what is not a secret stays readable
        assert "the LLM failed" in out and "401 Unauthorized" in out


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "session 3f2a ended (0 running); the turn took 812 ms; token usage 42 tokens"
    assert redact(text) == text


def test_the_cli_logs_json_when_asked(tmp_path: Any) -> None:
    with root_logger_restored() as root:
        assert main(["run", "--log-format", "json", "--bot", str(tmp_path / "missing.py")]) == 2
        (handler,) = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)


async def test_a_traced_session_s_lines_name_its_trace(json_logs) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bot = ChattyBot()
    telemetry = Telemetry(tracer=provider.get_tracer("test"))
    async with running_server(ServerConfig(bot=bot, telemetry=telemetry)) as (base, app):
        async with RTVIClient(await start_websocket_session(base)) as client:
            await client.ready()
            await client.send_text("hello")
            await client.wait_for("user-transcription")
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
    (session,) = [s for s in exporter.get_finished_spans() if s.name == "voxloop.session"]
    assert session.context is not None
    trace = f"{session.context.trace_id:032x}"
    records = lines(json_logs)
    said = [r for r in records if r["message"] == "chatty saw hello"]
    assert said and said[0]["trace_id"] == trace and said[0]["session_id"] == bot.ids[0]
    assert all("trace_id" not in r for r in records if r["session_id"] is None)
