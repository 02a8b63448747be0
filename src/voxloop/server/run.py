"""Run the app with uvicorn; Ctrl-C ends every session before the process exits."""

from __future__ import annotations

import logging
import socket
from types import FrameType

import uvicorn

from .app import create_app
from .config import ServerConfig
from .sessions import SessionRegistry

logger = logging.getLogger("voxloop.server")


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, sessions: SessionRegistry) -> None:
        super().__init__(config)
        self._sessions = sessions

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # the port is bound: clients can connect from now on
            print(f"voxloop: listening on http://{self.config.host}:{self.config.port}", flush=True)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn waits for open connections; ending the sessions is what closes them.
        self._sessions.stop_accepting()
        self._sessions.cancel_all("server shutting down")
        super().handle_exit(sig, frame)


async def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve until interrupted."""
    app = create_app(config)
    # No permessage-deflate: compressing PCM costs CPU and saves next to nothing (measured in
    # bench/sessions.py: about a third of the server's per-session CPU at 30 sessions).
    uvicorn_config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", ws_per_message_deflate=False
    )
    server = _Server(uvicorn_config, app.state.sessions)
    await server.serve()
