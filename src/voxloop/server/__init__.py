"""The dev server: an ASGI app serving the web page, /start, /status and the transports."""

from __future__ import annotations

from .app import create_app, wait_for_sessions_to_end
from .config import ServerConfig
from .run import serve
from .sessions import BotStartError, Session, SessionRefused, SessionRegistry

__all__ = [
    "BotStartError",
    "ServerConfig",
    "Session",
    "SessionRefused",
    "SessionRegistry",
    "create_app",
    "serve",
    "wait_for_sessions_to_end",
]
