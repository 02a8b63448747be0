"""Pieces of the test bots the integration and browser tests share."""

from __future__ import annotations

import inspect

from voxloop.bots import SessionInfo, load_bot
from voxloop.bots.echo import Echo
from voxloop.context import LLMContext
from voxloop.pipeline import Pipeline, PipelineTask
from voxloop.rtvi import ClientMessage, RTVIProcessor
from voxloop.services.local.demo_agent import TIME_TOOL
from voxloop.transports import Transport


def answering_rtvi() -> RTVIProcessor:
    """An RTVIProcessor that echoes every client request's data; a ``fail`` request is refused."""
    rtvi = RTVIProcessor()

    @rtvi.event_handler("on_client_message")
    async def answer(processor: RTVIProcessor, message: ClientMessage) -> None:
        if message.type == "fail":
            await processor.send_error_response(message, "asked to fail")
        else:
            await processor.send_server_response(message, {"echo": message.data})

    return rtvi


class SessionRecordingBot:
    """An echo bot (with :func:`answering_rtvi`) that keeps the SessionInfo of every session it got."""

    def __init__(self) -> None:
        self.sessions: list[SessionInfo] = []

    def __call__(self, transport: Transport, session: SessionInfo) -> PipelineTask:
        self.sessions.append(session)
        return PipelineTask(Pipeline([answering_rtvi(), transport.input(), Echo(), transport.output()]))


class ContextKeepingBot:
    """A built-in bot, loaded as ``voxloop run --bot NAME`` loads it, keeping each session's context.

    The bot's own system prompt and time tool start the context; the test reads ``contexts`` back.
    """

    def __init__(self, name: str) -> None:
        self.module = inspect.getmodule(load_bot(name))
        self.contexts: list[LLMContext] = []

    def __call__(self, transport: Transport, session: SessionInfo) -> PipelineTask:
        prompt = self.module.SYSTEM_PROMPT  # type: ignore[union-attr]
        context = LLMContext([{"role": "system", "content": prompt}], tools=[TIME_TOOL])
        self.contexts.append(context)
        return self.module.create_bot(transport, session, context=context)  # type: ignore[union-attr, no-any-return]
