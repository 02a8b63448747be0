"""The Realtime service's connection: connecting, the receive loop, reconnecting.

Functions of :class:`~voxloop.services.openai.realtime.OpenAIRealtimeService` (their first argument).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ...frames import ErrorCategory
from ..llm import LLMServiceError
from ._client import make_client
from ._realtime_events import handle_server_event

if TYPE_CHECKING:
    from .realtime import OpenAIRealtimeService

logger = logging.getLogger("voxloop.services.realtime")


class RealtimeAuthError(LLMServiceError):
    """The API key is missing or was refused."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorCategory.AUTHENTICATION)


class _Attempt:
    """One connection attempt; ``established`` once the server created the session."""

    established = False


async def keep_connected(svc: OpenAIRealtimeService) -> None:
    """The connection task: connect, receive, and after a loss reconnect (or give up with a fatal error).

    ``reconnect_attempts`` counts failures in a row: a connection that got as far as a session resets the
    count, so blips spread over a long call are each retried in full.
    """
    failures = 0
    while not svc._closing:
        attempt = _Attempt()
        try:
            await _connect_and_receive(svc, attempt)
            failures = 0
        except RealtimeAuthError as exc:
            await svc._fatal(str(exc), exc, ErrorCategory.AUTHENTICATION)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = 1 if attempt.established else failures + 1
            logger.warning("%s: connection failed (%d): %r", svc, failures, exc)
            if failures > svc.reconnect_attempts:
                message = f"{svc.name}: lost the Realtime API connection and could not reconnect: {exc}"
                await svc._fatal(message, exc, ErrorCategory.CONNECTIVITY)
                return
            await svc.clock.sleep(min(0.25 * 2 ** (failures - 1), 4.0))
        if svc._closing:
            return
        if svc._reconnect_now:
            svc._reconnect_now = False
        else:
            await svc._call_event_handler("on_connection_lost")


async def _connect_and_receive(svc: OpenAIRealtimeService, attempt: _Attempt) -> None:
    if svc._client is None:
        try:
            svc._client = make_client(svc.name, svc._api_key, svc._base_url)
        except ValueError as exc:  # neither a key nor a URL: nothing to talk to
            raise RealtimeAuthError(str(exc)) from None
    manager = svc._client.realtime.connect(model=svc.realtime_settings.model)
    try:
        conn = await manager.enter()
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise RealtimeAuthError(f"the OpenAI API key was refused (HTTP {status})") from exc
        raise
    svc._conn = conn
    try:
        while True:
            event = await conn.recv()
            if event.type == "session.created":
                attempt.established = True
            await handle_server_event(svc, event)
    except Exception as exc:
        if svc._closing or svc._reconnect_now or isinstance(exc, RealtimeAuthError):
            if isinstance(exc, RealtimeAuthError):
                raise
            return
        raise
    finally:
        svc._conn = None
        svc._ready.clear()
        svc._configured.clear()
        await svc._connection_gone()
        await close_quietly(conn)


async def close_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception as exc:
        logger.debug("closing the Realtime connection: %r", exc)
