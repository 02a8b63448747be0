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
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from .. import __version__
from ..bots import BotFactory, SessionInfo, create_task
from ..pipeline import PipelineTask
from ..transports.params import TransportParams
from ..transports.websocket import WebSocketTransport

if TYPE_CHECKING:
    from .webrtc_routes import WebRTCSignalling

logger = logging.getLogger("voxloop.server")

#: WebSocket close codes: the server is full (1013 "try again later"), auth and origin failures.
CLOSE_FULL = 1013
CLOSE_UNAUTHORIZED = 4001
CLOSE_FORBIDDEN_ORIGIN = 4003

#: The web page, bundled from ``web/`` by ``make web`` (never committed; see web/build.mjs).
STATIC_DIR = Path(__file__).resolve().parent / "static"


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
    webrtc: WebRTCSignalling | None = None
    if "webrtc" in config.transports:
        from .webrtc_routes import WebRTCSignalling  # needs the webrtc extra (aiortc)

        webrtc = WebRTCSignalling(config, sessions)
    web_page = STATIC_DIR / "index.html"
    web_built = web_page.is_file()
    if not web_built:
        logger.warning("the web page is not built (run `make web`); / shows how to build it")

    async def index(request: Request) -> Response:
        if web_built:
            return FileResponse(web_page, headers={"Cache-Control": "no-cache"})
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
        if transport == "webrtc" and webrtc is not None:
            return JSONResponse(webrtc.start_reply(body))
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
            logger.info("session %s ended (%d running)", session.session_id, len(sessions))

    routes = [
        Route("/", index),
        Route("/status", status),
        Route("/start", start, methods=["POST"]),
        WebSocketRoute("/ws", websocket_endpoint),
    ]
    if web_built:
        routes.append(Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"))
    if webrtc is not None:
        from .webrtc_routes import webrtc_routes

        routes += webrtc_routes(config, sessions, webrtc)
    app = Starlette(routes=routes)
    app.state.sessions = sessions
    app.state.webrtc = webrtc
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
<body style="font-family:system-ui;max-width:40em;margin:4em auto;line-height:1.5">
<h1>voxloop</h1><p>The server is running, but its web page has not been built.</p>
<p>Build it with <code>make web</code> (or <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>),
then restart the server. RTVI clients can connect meanwhile through <code>POST /start</code>.</p>
</body>"""
