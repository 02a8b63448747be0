"""Run the dev server in-process on a free loopback port, for integration tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn

from voxloop.server import ServerConfig, create_app, wait_for_sessions_to_end


@asynccontextmanager
async def running_server(config: ServerConfig) -> AsyncIterator[tuple[str, Any]]:
    """Yields (base URL, app); on exit every session is ended and the server stopped.

    The socket is bound and listening before uvicorn starts, so clients can connect at once
    (the kernel queues them) and nothing has to wait for a "started" flag.
    """
    app = create_app(config)
    # proto=IPPROTO_TCP (not 0) so that asyncio sets TCP_NODELAY on every accepted connection,
    # as it does when uvicorn binds host/port itself (`voxloop run`); else Nagle delays small sends.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        await wait_for_sessions_to_end(app, timeout=10)
        server.should_exit = True
        await serving
        sock.close()


async def start_websocket_session(base: str) -> str:
    """``POST /start`` for a WebSocket session, as the web client does; returns the ``wsUrl``."""
    async with httpx.AsyncClient() as http:
        reply = await http.post(f"{base}/start", json={"transport": "websocket"})
    reply.raise_for_status()
    return str(reply.json()["wsUrl"])
