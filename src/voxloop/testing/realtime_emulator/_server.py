"""The emulator itself: a WebSocket server on a free loopback port, in the test's own event loop, plus the
scripting, fault-injection and record-keeping API tests use."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ._conversation import Truncation
from ._responses import Failure, FunctionCall, Reply, ReplySource, ResponseRecord
from ._session import ClientEventRecord, EmulatedConnection

DEFAULT_MODEL = "gpt-realtime"
TranscriptSource = str | Callable[[bytes], str]


class EmulatorFailure(AssertionError):
    """The emulator itself broke (for example it built an event its schema rejects) during the test."""


class RealtimeEmulator:
    """A local OpenAI Realtime API (GA protocol) for tests: ``async with RealtimeEmulator() as emu:``.

    Point the official SDK at it with ``AsyncOpenAI(base_url=emu.base_url, api_key=emu.api_key)`` and
    ``client.realtime.connect(model=...)``, or any client at ``emu.ws_url``.

    Scripting: :meth:`add_reply` / :meth:`add_function_call` / :meth:`fail_next_response` queue what the
    next responses say (``default_reply`` when the queue is empty), :meth:`add_transcript` queues what the
    user "said" in each committed audio turn (``default_transcript`` otherwise).
    Faults: :meth:`inject_error`, :meth:`drop_connection`, ``response_delay_secs`` (wait before a
    response's first output; a cancel or barge-in ends the wait).
    Records: ``connections`` (each with its client/server events, conversation ``items``, ``truncations``,
    ``responses`` and ``session``), and the same merged across connections as properties;
    ``invalid_client_events``; :meth:`assert_valid` raises if any client event was invalid.
    Waiting: :meth:`wait_for_server_event`, :meth:`wait_for_client_event`, :meth:`wait_for_connection`,
    :meth:`wait_until` (no sleeping in tests).

    ``auth_failure``: what a wrong or missing API key gets. ``"event"`` (the real API's behaviour) accepts
    the socket, sends an ``error`` event with code ``invalid_api_key`` and closes with code 3000;
    ``"http"`` refuses the handshake with HTTP 401.
    """

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        auth_failure: Literal["event", "http"] = "event",
        default_model: str = DEFAULT_MODEL,
        default_reply: ReplySource = "Hello! How can I help you today?",
        default_transcript: TranscriptSource = "hello",
        response_delay_secs: float = 0.0,
        audio_chunk_ms: int = 100,
        voice_style: Literal["speech", "tone"] = "speech",
        wait_timeout_secs: float = 10.0,
    ) -> None:
        self.api_key = api_key
        self.auth_failure = auth_failure
        self.default_model = default_model
        self.default_reply = default_reply
        self.default_transcript = default_transcript
        self.response_delay_secs = response_delay_secs
        self.audio_chunk_ms = audio_chunk_ms
        self.voice_style: Literal["speech", "tone"] = voice_style
        self.wait_timeout_secs = wait_timeout_secs
        self.connections: list[EmulatedConnection] = []
        self.rejected_handshakes: list[dict[str, str]] = []
        self.problems: list[str] = []
        self.failures: list[BaseException] = []
        self._replies: deque[ReplySource] = deque()
        self._transcripts: deque[str] = deque()
        self._drop_when: str | None = None
        self._server: Server | None = None
        self._changed = asyncio.Event()
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """For ``AsyncOpenAI(base_url=...)``: the SDK appends ``/realtime`` and switches to ``ws://``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    async def __aenter__(self) -> RealtimeEmulator:
        self._server = await serve(
            self._serve_connection,
            "127.0.0.1",
            0,
            process_request=self._check_handshake,
            max_size=None,
            compression=None,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.failures and exc_type is None:
            raise EmulatorFailure(f"the Realtime emulator failed: {self.failures!r}") from self.failures[0]

    def _check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path.rstrip("/") != "/v1/realtime":
            return connection.respond(HTTPStatus.NOT_FOUND, "Not found\n")
        if self.auth_failure == "http" and not self._authorized(request.headers):
            self.rejected_handshakes.append(dict(request.headers.raw_items()))
            body = json.dumps(
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                }
            )
            response = connection.respond(HTTPStatus.UNAUTHORIZED, body)
            response.headers["Content-Type"] = "application/json"
            return response
        return None

    def _authorized(self, headers: Headers) -> bool:
        return self.api_key is None or headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _serve_connection(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        query = parse_qs(urlsplit(request.path).query)
        model = query.get("model", [self.default_model])[0]
        conn = EmulatedConnection(self, ws, model, dict(request.headers.raw_items()))
        self.connections.append(conn)
        self._notify()
        try:
            if not self._authorized(request.headers):
                await conn.error("Incorrect API key provided.", "invalid_api_key")
                await ws.close(3000, "invalid_request_error.invalid_api_key")
                return
            if "realtime=v1" in request.headers.get("OpenAI-Beta", ""):
                self.problems.append("client sent 'OpenAI-Beta: realtime=v1' (the Beta protocol); this is GA")
                await conn.error(
                    "This emulator speaks the GA Realtime protocol only; drop 'OpenAI-Beta: realtime=v1'.",
                    "beta_protocol_requested",
                )
                await ws.close(1008, "beta protocol not emulated")
                return
            await conn.serve()
        except Exception as exc:
            self._record_failure(exc)
            await ws.close(1011, "emulator error")
        finally:
            await conn.stop_response("client_cancelled", send=False)
            conn.closed.set()
            self._notify()

    # -- scripting ------------------------------------------------------------------------------------------

    def add_reply(self, reply: ReplySource) -> None:
        """Queue the next response: text (spoken in audio mode), a :class:`Reply`, or a callable that gets the
        :class:`ResponseRecord` (instructions, modalities, tools of that response) and returns either."""
        self._replies.append(reply)

    def add_function_call(
        self, name: str, arguments: str | dict[str, Any] = "{}", *, call_id: str | None = None, text: str = ""
    ) -> None:
        """Queue a response that calls a tool (after saying ``text``, if given)."""
        self._replies.append(Reply(text=text, function_calls=[FunctionCall(name, arguments, call_id)]))

    def fail_next_response(
        self, message: str = Failure.message, *, code: str | None = None, type: str = "server_error"
    ) -> None:
        self._replies.append(Reply(failure=Failure(message, type, code)))

    def add_transcript(self, text: str) -> None:
        """What the user said in the next committed audio turn (input transcription events)."""
        self._transcripts.append(text)

    async def _next_reply(self, record: ResponseRecord) -> Reply:
        source = self._replies.popleft() if self._replies else self.default_reply
        reply = source(record) if callable(source) else source
        reply = Reply(text=reply) if isinstance(reply, str) else reply
        declared = {tool.get("name") for tool in record.tools if isinstance(tool, dict)}
        for call in reply.function_calls:
            if call.name not in declared:
                self.problems.append(
                    f"response {record.id} calls '{call.name}', which the client never declared "
                    f"as a tool (tools: {sorted(n for n in declared if n)})"
                )
        return reply

    def _next_transcript(self, audio: bytes) -> str:
        if self._transcripts:
            return self._transcripts.popleft()
        source = self.default_transcript
        return source(audio) if callable(source) else source

    # -- faults ---------------------------------------------------------------------------------------------

    async def inject_error(
        self,
        message: str = "The server had an error while processing your request.",
        *,
        type: str = "server_error",
        code: str | None = None,
        param: str | None = None,
        connection: EmulatedConnection | None = None,
    ) -> None:
        """Send an ``error`` event now, on ``connection`` or on every open one."""
        for conn in [connection] if connection is not None else self.open_connections:
            await conn.error(message, code, param, None, type_=type)

    def drop_connection(self, *, when: str | None = None) -> None:
        """Cut every open connection abruptly (no close frame), now or, with ``when``, right after the
        emulator next sends a server event of that type (e.g. ``"response.output_audio.delta"``)."""
        if when is not None:
            self._drop_when = when
            return
        for conn in self.open_connections:
            conn.ws.transport.abort()

    async def _after_send(self, conn: EmulatedConnection, event: dict[str, Any]) -> None:
        if self._drop_when is not None and event["type"] == self._drop_when:
            self._drop_when = None
            conn.ws.transport.abort()

    def _record_failure(self, exc: BaseException) -> None:
        self.failures.append(exc)
        self._notify()

    # -- records --------------------------------------------------------------------------------------------

    @property
    def open_connections(self) -> list[EmulatedConnection]:
        return [conn for conn in self.connections if not conn.closed.is_set()]

    @property
    def client_events(self) -> list[ClientEventRecord]:
        return [event for conn in self.connections for event in conn.client_events]

    @property
    def server_events(self) -> list[dict[str, Any]]:
        return [event for conn in self.connections for event in conn.server_events]

    @property
    def invalid_client_events(self) -> list[ClientEventRecord]:
        return [event for event in self.client_events if event.problem is not None]

    @property
    def truncations(self) -> list[Truncation]:
        return [t for conn in self.connections for t in conn.truncations]

    @property
    def responses(self) -> list[ResponseRecord]:
        return [r for conn in self.connections for r in conn.responses]

    def server_events_of(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.server_events if event["type"] == event_type]

    def client_events_of(self, event_type: str) -> list[ClientEventRecord]:
        return [event for event in self.client_events if event.type == event_type]

    def assert_valid(self) -> None:
        """Raise listing every invalid client event and every scripting problem seen so far."""
        lines = [
            f"{e.type or '<unparsable>'}: {e.problem.message} ({e.raw[:200]})"
            for e in self.invalid_client_events
            if e.problem is not None
        ]
        lines += self.problems
        lines += [f"emulator failure: {exc!r}" for exc in self.failures]
        if lines:
            raise AssertionError("Realtime emulator saw problems:\n  " + "\n  ".join(lines))

    # -- waiting --------------------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(
        self, predicate: Callable[[], Any], what: str = "condition", timeout: float | None = None
    ) -> Any:
        """Wait (event-driven, no polling) until ``predicate()`` is truthy; return its value."""
        async with asyncio.timeout(self.wait_timeout_secs if timeout is None else timeout):
            while True:
                result = predicate()
                if result:
                    return result
                if self.failures:
                    raise EmulatorFailure(f"emulator failed while waiting for {what}") from self.failures[0]
                await self._changed.wait()

    async def wait_for_connection(self, count: int = 1) -> EmulatedConnection:
        await self.wait_until(lambda: len(self.connections) >= count, f"{count} connection(s)")
        return self.connections[count - 1]

    async def wait_for_server_event(self, event_type: str, count: int = 1) -> dict[str, Any]:
        """The ``count``-th server event of this type the emulator sent (waiting for it if need be)."""
        events = await self.wait_until(
            lambda: len(self.server_events_of(event_type)) >= count and self.server_events_of(event_type),
            f"server event {event_type} #{count}",
        )
        return events[count - 1]  # type: ignore[no-any-return]

    async def wait_for_client_event(self, event_type: str, count: int = 1) -> ClientEventRecord:
        events = await self.wait_until(
            lambda: len(self.client_events_of(event_type)) >= count and self.client_events_of(event_type),
            f"client event {event_type} #{count}",
        )
        return events[count - 1]  # type: ignore[no-any-return]
