"""The dev server's ASGI app: the endpoints the published clients and prebuilt UIs expect.

``GET /status``, ``GET /healthz`` (liveness), ``GET /readyz`` (readiness: 503 while draining),
``POST /start`` (``{"transport": "websocket"}`` -> ``{"wsUrl": ...}`` plus a
``token`` when tokens are required; ``{"transport": "webrtc"}`` -> ``{"sessionId", "iceConfig"}``;
no ``transport``: see :func:`default_transport`) and ``WS /ws`` (``?wire=json`` for RTVI JSON in
text frames). Many sessions run in one process; their registry and lifecycle are
:mod:`voxloop.server.sessions`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from .. import __version__
from ..bots import SessionInfo
from ..telemetry import Telemetry
from ..transports.websocket import WebSocketTransport
from .config import ServerConfig
from .sessions import BotStartError, SessionRefused, SessionRegistry

if TYPE_CHECKING:
    from .webrtc_routes import WebRTCSignalling

logger = logging.getLogger("voxloop.server")

#: WebSocket close codes: the server is full (1013 "try again later"), a request it cannot serve
#: (1008, e.g. an unknown ``?wire=``), auth and origin failures.
CLOSE_FULL = 1013
CLOSE_BAD_REQUEST = 1008
CLOSE_UNAUTHORIZED = 4001
CLOSE_FORBIDDEN_ORIGIN = 4003

#: The web page, bundled from ``web/`` by ``make web`` (never committed; see web/build.mjs).
STATIC_DIR = Path(__file__).resolve().parent / "static"


def default_transport(served: tuple[str, ...]) -> str:
    """The transport of a ``/start`` that names none, as the peer's runner picks it.

    The one served; with several, ``webrtc`` (the peer's default, what the published SmallWebRTC
    client expects when it sends no body). Both published clients send the same empty request, so a
    WebSocket client of a server with both transports must ask for ``{"transport": "websocket"}``.
    """
    if len(served) == 1:
        return served[0]
    return "webrtc" if "webrtc" in served else (served[0] if served else "websocket")


def create_app(config: ServerConfig) -> Starlette:
    telemetry = config.telemetry or Telemetry.from_environment()
    sessions = SessionRegistry(config.max_sessions, telemetry=telemetry)
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
                "transports": list(config.transports) + [p.name for p in config.telephony],
            }
        )

    async def start(request: Request) -> Response:
        try:
            body = await request.json() if await request.body() else {}
        except json.JSONDecodeError:
            return JSONResponse({"detail": "the request body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"detail": "the request body must be a JSON object"}, status_code=400)
        if config.cluster is not None:
            # A worker's sessions are booked by a gateway; a local token would bypass that booking.
            return JSONResponse(
                {"detail": "this server is a cluster worker: start sessions through a gateway"},
                status_code=409,
            )
        transport = body.get("transport")
        if transport is None:
            transport = default_transport(config.transports)
        if transport not in config.transports:
            return JSONResponse(
                {"detail": f"transport {transport!r} is not served here (served: {list(config.transports)})"},
                status_code=400,
            )
        if (refusal := sessions.refusal()) is not None:
            return JSONResponse({"detail": refusal}, status_code=503)
        if transport == "webrtc" and webrtc is not None:
            return JSONResponse(webrtc.start_reply(body))
        scheme = "wss" if request.url.scheme == "https" else "ws"
        reply: dict[str, str] = {"wsUrl": f"{scheme}://{request.url.netloc}/ws"}
        if config.require_token:
            reply["token"] = sessions.issue_token(config.token_ttl_secs)
        return JSONResponse(reply)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        """Readiness: 503 while draining, or while a cluster worker is not registered."""
        if sessions.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        if config.cluster is not None and not config.cluster.registered:
            return JSONResponse({"status": "not registered"}, status_code=503)
        return JSONResponse({"status": "ready"})

    def admission(token: str | None) -> AbstractAsyncContextManager[bool]:
        """Whether a ``/ws`` client may start a session: its token (ours or the cluster's), or none needed."""
        if token is not None and sessions.redeem_token(token):
            return nullcontext(True)
        if token is not None and config.cluster is not None:
            return config.cluster.admit(token)
        return nullcontext(not config.require_token)

    async def websocket_endpoint(websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if config.allowed_origins and origin not in config.allowed_origins:
            await websocket.close(code=CLOSE_FORBIDDEN_ORIGIN, reason="origin not allowed")
            return
        async with admission(websocket.query_params.get("token")) as admitted:
            if not admitted:
                await websocket.close(code=CLOSE_UNAUTHORIZED, reason="missing, used or expired token")
                return
            await websocket.accept()
            if (refusal := sessions.refusal()) is not None:
                await websocket.close(code=CLOSE_FULL, reason=refusal)
                return
            try:
                transport = WebSocketTransport(websocket, config.transport_params)
            except ValueError as exc:  # an unknown ?wire=
                await websocket.close(code=CLOSE_BAD_REQUEST, reason=str(exc)[:120])
                return

            async def refuse() -> None:
                await transport.send_error("the bot could not start")
                await transport.close()

            info = SessionInfo(session_id=uuid.uuid4().hex[:12], transport="websocket")
            try:
                session = await sessions.start(
                    config.bot, transport, info, close=transport.close, refuse=refuse
                )
            except SessionRefused as exc:
                await websocket.close(code=CLOSE_FULL, reason=str(exc))
                return
            except BotStartError:
                return
        await sessions.run(session)

    async def metrics(request: Request) -> Response:
        assert telemetry.metrics is not None
        from ..telemetry.metrics import CONTENT_TYPE_LATEST

        return Response(telemetry.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", index),
        Route("/status", status),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/start", start, methods=["POST"]),
        WebSocketRoute("/ws", websocket_endpoint),
    ]
    if telemetry.metrics is not None:  # Prometheus scrapes it; needs the telemetry extra
        routes.append(Route("/metrics", metrics))
    if web_built:
        routes.append(Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"))
    if webrtc is not None:
        from .webrtc_routes import webrtc_routes

        routes += webrtc_routes(config, sessions, webrtc)
    if config.telephony:
        from .telephony_routes import telephony_routes

        routes += telephony_routes(config, sessions, config.telephony)
    app = Starlette(routes=routes)
    app.state.sessions = sessions
    app.state.telemetry = telemetry
    app.state.webrtc = webrtc
    return app


async def wait_for_sessions_to_end(app: Starlette, timeout: float) -> None:
    """Cancel every session and wait (bounded) until they are gone: for a clean shutdown."""
    sessions: SessionRegistry = app.state.sessions
    sessions.stop_accepting()
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
