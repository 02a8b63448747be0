"""The dev server's ASGI app: the endpoints the published clients and prebuilt UIs expect.

``GET /status``, ``POST /start`` (``{"transport": "websocket"}`` -> ``{"wsUrl": ...}`` plus a
``token`` when tokens are required) and ``WS /ws``. Many sessions run in one process, each its
own pipeline task; past ``max_sessions`` new ones are refused with a clear reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .. import __version__
from ..bots import BotFactory, SessionInfo, create_task
from ..pipeline import PipelineTask
from ..transports.params import TransportParams
from ..transports.websocket import WebSocketTransport

logger = logging.getLogger("voxloop.server")

#: WebSocket close codes: the server is full (1013 "try again later"), auth and origin failures.
CLOSE_FULL = 1013
CLOSE_UNAUTHORIZED = 4001
CLOSE_FORBIDDEN_ORIGIN = 4003


@dataclass
class ServerConfig:
    bot: BotFactory
    transports: tuple[str, ...] = ("websocket",)
    max_sessions: int = 50
    require_token: bool = False
    token_ttl_secs: float = 60.0
    allowed_origins: tuple[str, ...] = ()
    transport_params: TransportParams = field(default_factory=TransportParams)


class Sessions:
    """The running sessions of this process: counted, limited, and all cancelled at shutdown."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tasks: dict[str, PipelineTask] = {}
        self._tokens: dict[str, float] = {}
        self.empty = asyncio.Event()
        self.empty.set()

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def full(self) -> bool:
        return len(self._tasks) >= self.limit

    def add(self, session_id: str, task: PipelineTask) -> None:
        self._tasks[session_id] = task
        self.empty.clear()

    def remove(self, session_id: str) -> None:
        self._tasks.pop(session_id, None)
        if not self._tasks:
            self.empty.set()

    def cancel_all(self, reason: str) -> None:
        for task in list(self._tasks.values()):
            task.request_cancel(reason)

    def issue_token(self, ttl_secs: float) -> str:
        now = time.monotonic()
        self._tokens = {t: expiry for t, expiry in self._tokens.items() if expiry > now}
        token = secrets.token_urlsafe(24)
        self._tokens[token] = now + ttl_secs
        return token

    def redeem_token(self, token: str | None) -> bool:
        """True once per valid token: tokens are single-use and expire."""
        if token is None:
            return False
        expiry = self._tokens.pop(token, None)
        return expiry is not None and expiry > time.monotonic()


def create_app(config: ServerConfig) -> Starlette:
    sessions = Sessions(config.max_sessions)

    async def index(request: Request) -> Response:
        return HTMLResponse(_PLACEHOLDER_PAGE)

    async def status(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "sessions": len(sessions),
                "max_sessions": sessions.limit,
                "transports": list(config.transports),
            }
        )

    async def start(request: Request) -> Response:
        try:
            body = await request.json() if await request.body() else {}
        except json.JSONDecodeError:
            return JSONResponse({"detail": "the request body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"detail": "the request body must be a JSON object"}, status_code=400)
        transport = body.get("transport", "websocket")
        if transport not in config.transports:
            return JSONResponse(
                {"detail": f"transport {transport!r} is not served here (served: {list(config.transports)})"},
                status_code=400,
            )
        if sessions.full:
            return JSONResponse({"detail": "the server is full; try again later"}, status_code=503)
        scheme = "wss" if request.url.scheme == "https" else "ws"
        reply: dict[str, str] = {"wsUrl": f"{scheme}://{request.url.netloc}/ws"}
        if config.require_token:
            reply["token"] = sessions.issue_token(config.token_ttl_secs)
        return JSONResponse(reply)

    async def websocket_endpoint(websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if config.allowed_origins and origin not in config.allowed_origins:
            await websocket.close(code=CLOSE_FORBIDDEN_ORIGIN, reason="origin not allowed")
            return
        if config.require_token and not sessions.redeem_token(websocket.query_params.get("token")):
            await websocket.close(code=CLOSE_UNAUTHORIZED, reason="missing, used or expired token")
            return
        await websocket.accept()
        if sessions.full:
            await websocket.close(code=CLOSE_FULL, reason="the server is full; try again later")
            return
        session = SessionInfo(session_id=uuid.uuid4().hex[:12], transport="websocket")
        transport = WebSocketTransport(websocket, config.transport_params)
        try:
            task = await create_task(config.bot, transport, session)
        except Exception:
            logger.exception("session %s: the bot could not be created", session.session_id)
            await transport.send_error("the bot could not start")
            await transport.close()
            return

        @transport.event_handler("on_client_disconnected")
        def client_left(transport: WebSocketTransport) -> None:
            task.request_cancel("client disconnected")

        sessions.add(session.session_id, task)
        logger.info("session %s started (%d running)", session.session_id, len(sessions))
        try:
            await task.run()
        finally:
            sessions.remove(session.session_id)
            await transport.close()
            await transport._finish_event_handlers()
            logger.info("session %s ended (%d running)", session.session_id, len(sessions))

    routes = [
        Route("/", index),
        Route("/status", status),
        Route("/start", start, methods=["POST"]),
        WebSocketRoute("/ws", websocket_endpoint),
    ]
    app = Starlette(routes=routes)
    app.state.sessions = sessions
    return app


async def wait_for_sessions_to_end(app: Starlette, timeout: float) -> None:
    """Cancel every session and wait (bounded) until they are gone: for a clean shutdown."""
    sessions: Sessions = app.state.sessions
    sessions.cancel_all("server shutting down")
    try:
        await asyncio.wait_for(sessions.empty.wait(), timeout)
    except TimeoutError:
        logger.warning("%d session(s) still running after %ss", len(sessions), timeout)


_PLACEHOLDER_PAGE = """<!doctype html><meta charset="utf-8"><title>voxloop</title>
<body style="font-family:system-ui;max-width:40em;margin:4em auto">
<h1>voxloop</h1><p>The server is running. Connect an RTVI client to <code>POST /start</code>.</p>
</body>"""
