"""The gateway: a stateless HTTP front that hands each ``POST /start`` to a worker.

Run as many as you like against one Redis; they share nothing else. ``POST /start`` takes the
body the published clients send (see :func:`voxloop.server.app.default_transport` for a missing
``transport``) and books a worker with :func:`~voxloop.cluster.reservations.reserve`:

- WebSocket: ``{"wsUrl": "<worker>/ws", "token"}`` (exactly those keys: the published WebSocket
  client rejects others); only that worker accepts the token, once.
- WebRTC: ``{"sessionId", "iceConfig"}``; the client's ``POST|PATCH /sessions/{id}/api/offer``
  reach any gateway, which forwards them to the worker owning the session (the first offer with
  the session's token, which the worker redeems). Media flows between the client and the worker.

No free worker (or no Redis): ``503`` with ``Retry-After``, at once. ``GET /status`` is the
registry as JSON, ``GET /healthz`` liveness, ``GET /readyz`` 200 while Redis answers, ``GET /metrics``
Prometheus metrics (with the telemetry extra); ``GET /`` the web page (when built), whose client
then starts its sessions through this gateway.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..server.app import STATIC_DIR, default_transport
from ..server.config import CLUSTER_TOKEN_HEADER
from .registry import PREFIX, read_workers, text
from .reservations import reserve, route_of
from .worker import connect_redis

if TYPE_CHECKING:
    from ..telemetry.metrics import GatewayMetrics

__all__ = ["GatewayConfig", "create_gateway", "serve_gateway"]

logger = logging.getLogger("voxloop.cluster")

MAX_BODY_BYTES = 256 * 1024

#: What a client is told to wait before asking again when every worker is full.
RETRY_AFTER_SECS = 2


class GatewayConfig:
    """``reservation_ttl_secs``: how long a booked place waits for its client to connect.

    ``route_ttl_secs``: how long after its last signalling call a WebRTC session can still be
    renegotiated through the gateways. ``ice_servers``: what WebRTC clients are told in the
    ``/start`` reply (the same STUN/TURN servers the workers are given, see
    :mod:`voxloop.server.ice`).
    """

    def __init__(
        self,
        redis_url: str,
        *,
        transports: tuple[str, ...] = ("websocket", "webrtc"),
        reservation_ttl_secs: float = 30.0,
        route_ttl_secs: float = 24 * 3600.0,
        proxy_timeout_secs: float = 15.0,
        ice_servers: list[dict[str, Any]] | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.transports = transports
        self.reservation_ttl_secs = reservation_ttl_secs
        self.route_ttl_secs = route_ttl_secs
        self.proxy_timeout_secs = proxy_timeout_secs
        self.ice_servers = list(ice_servers or [])


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECS)})


def create_gateway(
    config: GatewayConfig, redis: Redis | None = None, *, metrics: GatewayMetrics | None = None
) -> Starlette:
    """The gateway's ASGI app (its Redis client and HTTP client live as long as its lifespan).

    ``metrics``: where it counts (default: its own, when prometheus-client is installed).
    """
    registry = redis or connect_redis(config.redis_url)
    http = httpx.AsyncClient(timeout=config.proxy_timeout_secs, trust_env=False)
    if metrics is None and importlib.util.find_spec("prometheus_client") is not None:
        from ..telemetry.metrics import GatewayMetrics

        metrics = GatewayMetrics()

    def count_start(transport: str, outcome: str) -> None:
        if metrics is not None:
            metrics.starts.labels(transport, outcome).inc()

    def count_offer(outcome: str) -> None:
        if metrics is not None:
            metrics.signalling.labels(outcome).inc()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def readyz(request: Request) -> Response:
        try:
            await registry.ping()
        except (RedisError, OSError) as exc:
            return JSONResponse({"status": f"Redis unreachable: {exc}"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def status(request: Request) -> Response:
        try:
            workers = await read_workers(registry)
        except (RedisError, OSError) as exc:
            return _unavailable(f"the cluster registry (Redis) is unreachable: {exc}")
        ready = [w for w in workers if w.state == "ready"]
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "workers": [w.as_json() for w in workers],
                "ready": len(ready),
                "sessions": sum(w.sessions for w in workers),
                "reserved": sum(w.reserved for w in workers),
                "free": sum(max(0, w.capacity - w.sessions - w.reserved) for w in ready),
            }
        )

    async def start(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return JSONResponse({"detail": "the request body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"detail": "the request body must be a JSON object"}, status_code=400)
        transport = body.get("transport") or default_transport(config.transports)
        if transport not in config.transports:
            count_start("unknown", "bad_request")
            detail = f"transport {transport!r} is not served here (served: {list(config.transports)})"
            return JSONResponse({"detail": detail}, status_code=400)
        session_body = body.get("body")
        booking = time.perf_counter()
        try:
            reservation = await reserve(
                registry,
                transport,
                config.reservation_ttl_secs,
                route_ttl_secs=config.route_ttl_secs if transport == "webrtc" else 0,
                body=session_body if isinstance(session_body, dict) else None,
            )
        except (RedisError, OSError) as exc:
            logger.error("cannot reserve a worker, Redis is unreachable: %s", exc)
            count_start(transport, "unavailable")
            return _unavailable("the cluster registry is unreachable; try again later")
        if metrics is not None:
            metrics.reserve_seconds.observe(time.perf_counter() - booking)
        if reservation is None:
            count_start(transport, "full")
            return _unavailable(f"no ready worker has room for a {transport} session; try again later")
        count_start(transport, "placed")
        if transport == "webrtc":
            return JSONResponse(
                {"sessionId": reservation.token, "iceConfig": {"iceServers": config.ice_servers}}
            )
        base = reservation.worker_url
        ws_base = "wss" + base[len("https") :] if base.startswith("https") else "ws" + base[len("http") :]
        return JSONResponse({"wsUrl": f"{ws_base}/ws", "token": reservation.token})

    async def offer(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return JSONResponse(
                {"detail": f"the request body is over {MAX_BODY_BYTES} bytes"}, status_code=413
            )
        try:
            route = await route_of(registry, session_id)
            worker_url = None
            if route is not None:
                url = await registry.hget(PREFIX + "worker:" + route[0], "url")
                worker_url = text(url) if url is not None else None
                await registry.pexpire(PREFIX + "route:" + session_id, int(config.route_ttl_secs * 1000))
        except (RedisError, OSError):
            count_offer("unavailable")
            return _unavailable("the cluster registry is unreachable; try again later")
        if route is None:
            count_offer("unknown_session")
            return JSONResponse({"detail": f"unknown or expired session {session_id!r}"}, status_code=404)
        if worker_url is None:
            count_offer("worker_gone")
            return JSONResponse({"detail": "the worker of this session is gone"}, status_code=410)
        content = raw
        if request.method == "POST" and route[1]:  # the /start body, unless the offer brings its own
            try:
                offer_body = json.loads(raw)
            except ValueError:
                offer_body = None
            if (
                isinstance(offer_body, dict)
                and "requestData" not in offer_body
                and "request_data" not in offer_body
            ):
                content = json.dumps({**offer_body, "requestData": route[1]}).encode()
        try:
            reply = await http.request(
                request.method,
                f"{worker_url}/sessions/{session_id}/api/offer",
                content=content,
                headers={"Content-Type": "application/json", CLUSTER_TOKEN_HEADER: session_id},
            )
        except httpx.HTTPError as exc:
            logger.warning("forwarding signalling to %s failed: %s", worker_url, exc)
            count_offer("worker_error")
            return JSONResponse({"detail": "the worker of this session did not answer"}, status_code=502)
        count_offer("forwarded")
        return Response(reply.content, status_code=reply.status_code, media_type="application/json")

    async def metrics_endpoint(request: Request) -> Response:
        assert metrics is not None
        from ..telemetry.metrics import CONTENT_TYPE_LATEST

        try:  # the cluster's capacity as the registry holds it now (left as it was if Redis is down)
            workers = await read_workers(registry)
        except (RedisError, OSError):
            workers = None
        if workers is not None:
            states = {"ready": 0, "draining": 0}
            for worker in workers:
                states[worker.state] = states.get(worker.state, 0) + 1
            for state, count in states.items():
                metrics.workers.labels(state).set(count)
            metrics.cluster_sessions.set(sum(w.sessions + w.reserved for w in workers))
            ready = [w for w in workers if w.state == "ready"]
            metrics.cluster_free.set(sum(max(0, w.capacity - w.sessions - w.reserved) for w in ready))
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await http.aclose()
            await registry.aclose()

    methods = ["POST", "PATCH"]
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/status", status),
        Route("/start", start, methods=["POST"]),
        Route("/sessions/{session_id}/api/offer", offer, methods=methods),
    ]
    if metrics is not None:
        routes.append(Route("/metrics", metrics_endpoint))
    if (STATIC_DIR / "index.html").is_file():  # the same web page as a worker's, if it is built
        routes.append(Route("/", index))
        routes.append(Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.redis = registry
    app.state.metrics = metrics
    return app


#: On SIGTERM, how long requests in flight (a /start, a forwarded offer) may take to finish.
SHUTDOWN_GRACE_SECS = 20


async def serve_gateway(config: GatewayConfig, host: str = "127.0.0.1", port: int = 7870) -> None:
    """Serve the gateway until SIGINT or SIGTERM; either lets requests in flight finish, then returns."""
    import signal

    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                print(f"voxloop: gateway listening on http://{host}:{port}", flush=True)

        async def shutdown(self, sockets: Any = None) -> None:
            print("voxloop: gateway stopping (requests in flight finish first)", flush=True)
            await super().shutdown(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if sig != signal.SIGTERM:
                super().handle_exit(sig, frame)
                return
            # What an orchestrator sends to stop a gateway: a normal end (exit 0), so not recorded
            # for uvicorn to re-raise once served (which would kill the process with the signal).
            # A second one stops without waiting.
            self.force_exit = self.should_exit
            self.should_exit = True

    app = create_gateway(config)
    # log_config=None: uvicorn's lines go through voxloop's handler (JSON, redaction).
    uvicorn_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        log_config=None,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECS,
    )
    await _Server(uvicorn_config).serve()
