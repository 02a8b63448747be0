"""The dev server: an ASGI app serving the web page, /start, /status and the transports."""

from __future__ import annotations

from .app import ServerConfig, Sessions, create_app, wait_for_sessions_to_end
from .run import serve

__all__ = ["ServerConfig", "Sessions", "create_app", "serve", "wait_for_sessions_to_end"]
