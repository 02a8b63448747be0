"""SmallWebRTC signalling over HTTP: ``POST|PATCH /api/offer`` and ``/sessions/{id}/api/offer``.

``POST`` takes ``{sdp, type:"offer", pc_id, restart_pc[, requestData|request_data]}`` and answers
``{sdp, type:"answer", pc_id}``. A known ``pc_id`` renegotiates on the same peer connection (or,
with ``restart_pc``, moves the session to a new one with a new ``pc_id``); no ``pc_id``, or one we
do not know, starts a new connection and a new session, as the peer's runner does. ``PATCH`` takes
``{pc_id, candidates:[{candidate, sdp_mid, sdp_mline_index}]}``; an unknown ``pc_id`` is a 404.
Bad JSON, a bad SDP or a bad candidate is a 400 with ``{"detail": ...}``; a full server is a 503.
On a cluster worker, a new offer forwarded by a gateway carries the session's one-time token in
the ``X-Voxloop-Cluster-Token`` header (401 when it is not valid here), and a bare ``/api/offer``
for a new session is refused (401) as the worker's ``/ws`` refuses a client without a token.

Each connection is its own session, started and run by the server's
:class:`~voxloop.server.sessions.SessionRegistry` (the offer is answered once the bot's task
exists, then the session runs in a task owned here); the peer connection is closed (``peerLeft``
first) when the session ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..bots import SessionInfo
from ..pipeline import TaskSet
from ..telemetry import session_id as current_session_id
from ..transports.webrtc import SignallingError, WebRTCConnection, WebRTCTransport
from .config import CLUSTER_TOKEN_HEADER, ServerConfig
from .sessions import BotStartError, SessionRefused, SessionRegistry

__all__ = ["CLUSTER_TOKEN_HEADER", "WebRTCSignalling", "webrtc_routes"]

logger = logging.getLogger("voxloop.server")

MAX_BODY_BYTES = 256 * 1024
PENDING_SESSION_TTL_SECS = 300.0
MAX_PENDING_SESSIONS = 1000


class _HTTPError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class WebRTCSignalling:
    """The server's peer connections by ``pc_id``, and the sessions they run.

    ``can_accept`` is the limit hook, asked before every new connection (default: the session
    registry accepts new sessions). ``ice_servers`` (default: the config's) are handed to aiortc and
    to clients via /start; by default there are none, so nothing ever contacts a public STUN server.
    """

    def __init__(
        self,
        config: ServerConfig,
        sessions: SessionRegistry,
        *,
        ice_servers: list[dict[str, Any]] | None = None,
        can_accept: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.ice_servers: list[dict[str, Any]] = list(
            ice_servers if ice_servers is not None else config.ice_servers
        )
        self.can_accept = can_accept or (lambda: sessions.accepting)
        self._connections: dict[str, WebRTCConnection] = {}
        self._runners = TaskSet(self)
        self._pending: dict[str, tuple[float, dict[str, Any]]] = {}  # /start sessions not yet offered
        self.empty = asyncio.Event()
        self.empty.set()

    def __len__(self) -> int:
        """Live peer connections."""
        return len(self._connections)

    def connection(self, pc_id: str) -> WebRTCConnection | None:
        return self._connections.get(pc_id)

    # -- /start ------------------------------------------------------------------------------------

    def start_reply(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """What ``POST /start`` answers for ``{"transport": "webrtc"}``: a session to offer into.

        The client then POSTs its offer to ``/sessions/{sessionId}/api/offer``. The session's
        ``body`` (the start request's ``body`` key) reaches the bot as ``SessionInfo.body``.
        ``enableDefaultIceServers`` is ignored: only configured ICE servers are ever used.
        """
        now = time.monotonic()
        self._pending = {k: v for k, v in self._pending.items() if v[0] > now}
        while len(self._pending) >= MAX_PENDING_SESSIONS:  # bounded: the oldest start goes first
            del self._pending[next(iter(self._pending))]
        session_id = uuid.uuid4().hex[:12]
        session_body = (body or {}).get("body")
        self._pending[session_id] = (
            now + PENDING_SESSION_TTL_SECS,
            session_body if isinstance(session_body, dict) else {},
        )
        return {"sessionId": session_id, "iceConfig": {"iceServers": list(self.ice_servers)}}

    # -- HTTP ------------------------------------------------------------------------------------

    async def endpoint(self, request: Request) -> Response:
        session_id = request.path_params.get("session_id")
        try:
            body = await _json_body(request)
            if request.method == "PATCH":
                reply = await self.handle_candidates(body)
            else:
                token = request.headers.get(CLUSTER_TOKEN_HEADER)
                reply = await self.handle_offer(body, session_id, cluster_token=token)
        except _HTTPError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status)
        return JSONResponse(reply)

    async def handle_offer(
        self, body: dict[str, Any], session_id: str | None = None, *, cluster_token: str | None = None
    ) -> dict[str, Any]:
        sdp, kind = body.get("sdp"), body.get("type", "offer")
        if not isinstance(sdp, str) or not sdp.strip():
            raise _HTTPError(400, "the offer needs an 'sdp' string")
        if kind != "offer":
            raise _HTTPError(400, f"'type' must be 'offer', not {kind!r}")
        pc_id = body.get("pc_id")
        restart = body.get("restart_pc") is True
        connection = self._connections.get(pc_id) if isinstance(pc_id, str) else None
        if connection is not None:
            try:
                answer = await connection.answer(sdp, "offer", restart_pc=restart)
            except SignallingError as exc:
                raise _HTTPError(400, str(exc)) from None
            if answer["pc_id"] != pc_id:  # restart_pc: the session moved to a new peer connection
                self._connections.pop(str(pc_id), None)
                self._connections[answer["pc_id"]] = connection
            return answer
        if pc_id is not None:
            logger.info("offer for unknown pc_id %r: starting a new connection", pc_id)
        request_data = body.get("requestData", body.get("request_data"))
        if cluster_token is not None and self.config.cluster is not None:
            # A gateway's session: its token, redeemed once, stands for this worker's own /start.
            async with self.config.cluster.admit(cluster_token) as admitted:
                if not admitted:
                    raise _HTTPError(401, "unknown, used or expired cluster session")
                return await self._new_session(sdp, None, request_data)
        if session_id is None and self.config.cluster is not None:
            # As on /ws: a session that skipped the gateway would skip its booking in the registry.
            raise _HTTPError(401, "this worker is in a cluster: start sessions through a gateway's /start")
        return await self._new_session(sdp, session_id, request_data)

    async def handle_candidates(self, body: dict[str, Any]) -> dict[str, Any]:
        pc_id = body.get("pc_id")
        connection = self._connections.get(pc_id) if isinstance(pc_id, str) else None
        if connection is None:
            raise _HTTPError(404, f"unknown pc_id {pc_id!r}")
        candidates = body.get("candidates")
        if not isinstance(candidates, list):
            raise _HTTPError(400, "'candidates' must be a list")
        try:
            await connection.add_ice_candidates(candidates)
        except SignallingError as exc:
            raise _HTTPError(400, str(exc)) from None
        return {"status": "success"}

    # -- sessions --------------------------------------------------------------------------------

    async def _new_session(self, sdp: str, session_id: str | None, request_data: Any) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if session_id is not None:
            pending = self._pending.pop(session_id, None)
            if pending is None or pending[0] <= time.monotonic():
                raise _HTTPError(404, f"unknown or expired session {session_id!r}; POST /start first")
            body = pending[1]
        else:
            session_id = uuid.uuid4().hex[:12]
        if isinstance(request_data, dict):
            body = request_data
        if not self.can_accept():
            raise _HTTPError(503, self.sessions.refusal() or "the server is full; try again later")
        # This request's task (its own context) works for the session from here: the peer connection's
        # tasks, created below, and their log lines carry the session id.
        current_session_id.set(session_id)
        connection = WebRTCConnection(self.ice_servers)
        try:
            answer = await connection.answer(sdp, "offer")
        except SignallingError as exc:
            await connection.close(str(exc), notify_peer=False)
            raise _HTTPError(400, str(exc)) from None
        info = SessionInfo(session_id=session_id, transport="webrtc", body=body)
        transport = WebRTCTransport(connection, self.config.transport_params)

        async def refuse() -> None:  # the offer's reply says why; the peer never connected
            await connection.close("the bot could not start", notify_peer=False)

        async def close() -> None:
            await transport.close("the session ended")
            self._forget(connection)

        try:
            session = await self.sessions.start(self.config.bot, transport, info, close=close, refuse=refuse)
        except SessionRefused as exc:  # others took the last slots while the answer was made
            await connection.close(str(exc), notify_peer=False)
            raise _HTTPError(503, str(exc)) from None
        except BotStartError:
            raise _HTTPError(500, "the bot could not start") from None
        self._connections[answer["pc_id"]] = connection
        self.empty.clear()
        self._runners.spawn(self.sessions.run(session), f"webrtc-{session_id}")
        return answer

    def _forget(self, connection: WebRTCConnection) -> None:
        for pc_id in [k for k, v in self._connections.items() if v is connection]:
            del self._connections[pc_id]
        if not self._connections:
            self.empty.set()

    async def close(self, timeout: float = 10.0) -> None:
        """Shutdown: cancel every WebRTC session and wait (bounded) until their connections closed."""
        for connection in list(self._connections.values()):
            await connection.close("server shutting down")
        await self._runners.cancel_and_wait(grace_secs=timeout)


def webrtc_routes(
    config: ServerConfig, sessions: SessionRegistry, signalling: WebRTCSignalling | None = None
) -> list[Route]:
    """The offer routes; pass ``signalling`` to share it with ``/start`` (see ``start_reply``)."""
    if signalling is None:
        signalling = WebRTCSignalling(config, sessions)
    methods = ["POST", "PATCH"]
    return [
        Route("/api/offer", signalling.endpoint, methods=methods),
        Route("/sessions/{session_id}/api/offer", signalling.endpoint, methods=methods),
    ]


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise _HTTPError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        raise _HTTPError(400, "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise _HTTPError(400, "the request body must be a JSON object")
    return body
