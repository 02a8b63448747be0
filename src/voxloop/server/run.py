"""Run the app with uvicorn.

Ctrl-C (SIGINT) ends every session at once before the process exits. SIGTERM (what an
orchestrator sends) drains: no new session from that moment (``/readyz`` fails, a cluster worker
tells the registry), the live ones may finish for up to ``drain_timeout`` seconds, then the rest
are ended cleanly and the process exits 0. A second SIGTERM ends them at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from .app import create_app
from .config import ServerConfig
from .sessions import SessionRegistry

logger = logging.getLogger("voxloop.server")

#: How long ended sessions get to close their transports before the server stops anyway.
CLOSE_TIMEOUT_SECS = 10.0


class _Server(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, app: Starlette, server_config: ServerConfig, drain_timeout: float
    ):
        super().__init__(config)
        self._server_config = server_config
        self._sessions: SessionRegistry = app.state.sessions
        self._drain_timeout = drain_timeout
        self._drain_requested = False
        self._draining: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # the port is bound: clients can connect from now on
            print(f"voxloop: listening on http://{self.config.host}:{self.config.port}", flush=True)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self._drain_requested:
            # Only a flag here (a signal handler); on_tick starts the drain on the event loop.
            self._drain_requested = True
            self._sessions.stop_accepting("the server is draining")
            return
        # uvicorn waits for open connections; ending the sessions is what closes them.
        self._sessions.stop_accepting()
        self._sessions.cancel_all("server shutting down")
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_requested and self._draining is None:
            self._draining = asyncio.create_task(self._drain(), name="voxloop-drain")
        if self._draining is not None and self._draining.done():
            self.should_exit = True
        return await super().on_tick(counter)

    async def _drain(self) -> None:
        if self._server_config.cluster is not None:
            await self._server_config.cluster.announce_draining()  # before anything else: no new booking
        live, timeout = len(self._sessions), self._drain_timeout
        print(f"voxloop: draining {live} session(s) (up to {timeout:g}s)", flush=True)
        try:
            await asyncio.wait_for(self._sessions.empty.wait(), self._drain_timeout)
        except TimeoutError:
            logger.warning("drain timeout: ending %d session(s)", len(self._sessions))
            await self._sessions.end_all("the server is shutting down")
            try:
                await asyncio.wait_for(self._sessions.empty.wait(), CLOSE_TIMEOUT_SECS)
            except TimeoutError:
                logger.warning("%d session(s) still running: cancelling them", len(self._sessions))
                self._sessions.cancel_all("the server is shutting down")
                try:
                    await asyncio.wait_for(self._sessions.empty.wait(), CLOSE_TIMEOUT_SECS)
                except TimeoutError:
                    logger.warning("%d session(s) still running", len(self._sessions))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._draining is not None and not self._draining.done():
            self._draining.cancel()
        if self._draining is not None:
            await asyncio.gather(self._draining, return_exceptions=True)
        await super().shutdown(sockets)


async def serve(
    config: ServerConfig, host: str = "127.0.0.1", port: int = 7860, *, drain_timeout: float = 30.0
) -> None:
    """Serve until interrupted (SIGINT) or drained (SIGTERM); a cluster worker stays registered meanwhile."""
    app = create_app(config)
    telemetry = app.state.telemetry
    lag = None
    if telemetry.metrics is not None:
        from ..telemetry.metrics import EventLoopLagMonitor

        lag = EventLoopLagMonitor(telemetry.metrics.event_loop_lag)
        lag.start()
    # No permessage-deflate: compressing PCM costs CPU and saves next to nothing (measured in
    # bench/sessions.py: about a third of the server's per-session CPU at 30 sessions).
    uvicorn_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        ws_per_message_deflate=False,
        log_config=None,  # uvicorn's lines go through voxloop's handler: session ids, JSON, redaction
    )
    server = _Server(uvicorn_config, app, config, drain_timeout)
    membership: asyncio.Task[None] | None = None
    if config.cluster is not None:
        membership = asyncio.create_task(config.cluster.serve(app.state.sessions), name="voxloop-cluster")
    try:
        await server.serve()
    finally:
        if membership is not None:
            membership.cancel()
            await asyncio.gather(membership, return_exceptions=True)
        if lag is not None:
            await lag.stop()
        telemetry.shutdown()
