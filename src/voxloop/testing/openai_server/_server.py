"""The server itself: Starlette on uvicorn, on a free loopback port, in the test's own event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

RouteFactory = Callable[["OpenAITestServer"], list[BaseRoute]]


@dataclass
class RecordedRequest:
    """One request the server received: its path, parsed body, and the validation problem if any."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    problem: str | None = None


@dataclass
class OpenAITestServer:
    """``async with OpenAITestServer() as server:`` then use ``server.base_url`` (ends in ``/v1``).

    ``api_key``: the bearer token requests must carry (None = any). ``script``: per-endpoint settings a test
    sets before the request (each endpoint module documents its keys). ``invalid_requests`` lists requests
    that did not validate against the SDK's types: tests assert it stays empty.
    """

    api_key: str | None = "test-key"
    script: dict[str, Any] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def invalid_requests(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.problem is not None]

    def app(self) -> Starlette:
        routes: list[BaseRoute] = []
        for factory in _route_factories():
            routes.extend(factory(self))
        return Starlette(routes=routes)

    def check_auth(self, request: Request) -> JSONResponse | None:
        """The OpenAI-shaped 401 when the bearer token is missing or wrong, else None."""
        if self.api_key is None:
            return None
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return error_response(401, "Incorrect API key provided.", "invalid_api_key")
        return None

    async def __aenter__(self) -> OpenAITestServer:
        # proto=IPPROTO_TCP (not 0) so that asyncio sets TCP_NODELAY on every accepted connection;
        # else Nagle holds streamed chunks until the client's delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self._sock, self.port = sock, sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app(), log_level="warning", lifespan="off"))
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]), name="openai-test-server")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
        if self._sock is not None:
            self._sock.close()


def error_response(
    status: int, message: str, code: str | None = None, type_: str = "invalid_request_error"
) -> JSONResponse:
    """An error body in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": None, "code": code}}, status_code=status
    )


async def scripted_fault(entry: dict[str, Any], extra_delay: float = 0.0) -> JSONResponse | None:
    """Play a scripted answer's faults: wait its ``delay`` (plus ``extra_delay``), and answer its
    ``status`` (with ``message``) as an OpenAI error if it has one; None when the request goes on."""
    delay = float(entry.get("delay", 0.0)) + extra_delay
    if delay > 0:
        await asyncio.sleep(delay)  # a fault injected on purpose: a slow server
    if "status" not in entry:
        return None
    status = int(entry["status"])
    message = str(entry.get("message", f"scripted error {status}"))
    return error_response(status, message, None, "server_error" if status >= 500 else "invalid_request_error")


def _route_factories() -> list[RouteFactory]:
    """Every endpoint module's ``routes`` (imported here so a missing optional module is simply skipped)."""
    import importlib

    factories: list[RouteFactory] = []
    for module in ("_chat", "_transcriptions", "_speech"):
        try:
            factories.append(importlib.import_module(f"{__package__}.{module}").routes)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{module}":
                raise
    return factories
