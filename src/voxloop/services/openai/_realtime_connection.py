"""The Realtime service's connection: the SDK connection, its receive loop, reconnecting.

:class:`RealtimeLink` owns the ``AsyncOpenAI`` client, the live connection and the task that keeps it
up; it knows nothing of the conversation. It hands every server event to ``on_event``, tells
``on_gone`` when a connection ended (``resume``: lost, not closed by us) and ``on_lost`` before it
reconnects after a loss; a missing or refused key, or too many failures in a row, end it through
``on_fatal``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import RealtimeServerEvent

from ...frames import ErrorCategory
from ...pipeline import Clock
from ..llm import LLMServiceError
from ._client import make_client

logger = logging.getLogger("voxloop.services.realtime")


class RealtimeAuthError(LLMServiceError):
    """The API key is missing or was refused."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorCategory.AUTHENTICATION)


class _Attempt:
    """One connection attempt; ``established`` once the server created the session."""

    established = False


class RealtimeLink:
    """Connect, receive, and after a loss reconnect (see the module docstring).

    ``attempts`` counts failures in a row: a connection that got as far as a session resets the count,
    so blips spread over a long call are each retried in full.
    """

    def __init__(
        self,
        *,
        name: str,
        api_key: str | None,
        base_url: str | None,
        model: Callable[[], str],
        attempts: Callable[[], int],
        clock: Callable[[], Clock],
        on_event: Callable[[RealtimeServerEvent], Awaitable[None]],
        on_gone: Callable[[bool], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
        on_fatal: Callable[[str, BaseException, ErrorCategory], Awaitable[None]],
    ) -> None:
        self._name = name
        self._api_key = api_key
        self._base_url = base_url
        self._model = model
        self._attempts = attempts
        self._clock = clock
        self._on_event = on_event
        self._on_gone = on_gone
        self._on_lost = on_lost
        self._on_fatal = on_fatal
        self._client: AsyncOpenAI | None = None
        self._conn: AsyncRealtimeConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.closing = False
        self._reconnect_now = False

    def __str__(self) -> str:
        return self._name

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._keep_connected(), name=f"{self._name}::connection")

    async def send(self, event: dict[str, Any], what: str) -> None:
        """Send one client event; dropped, with a log line, when there is no connection."""
        conn = self._conn
        if conn is None:
            logger.debug("%s: not connected, %s dropped", self, what)
            return
        try:
            await conn.send(event)  # type: ignore[arg-type]  # a RealtimeClientEventParam dict
        except Exception as exc:  # the receive loop notices a lost connection and reconnects
            logger.warning("%s: sending %s failed: %r", self, what, exc)

    async def reconnect(self) -> None:
        """Close this connection and connect again at once (no ``on_lost``: we asked for it)."""
        self._reconnect_now = True
        if self._conn is not None:
            await close_quietly(self._conn)

    async def shutdown(self) -> None:
        self.closing = True
        if self._conn is not None:
            await close_quietly(self._conn)
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _keep_connected(self) -> None:
        failures = 0
        while not self.closing:
            attempt = _Attempt()
            try:
                await self._connect_and_receive(attempt)
                failures = 0
            except RealtimeAuthError as exc:
                self.closing = True
                await self._on_fatal(str(exc), exc, ErrorCategory.AUTHENTICATION)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = 1 if attempt.established else failures + 1
                logger.warning("%s: connection failed (%d): %r", self, failures, exc)
                if failures > self._attempts():
                    message = f"{self._name}: lost the Realtime API connection and could not reconnect: {exc}"
                    self.closing = True
                    await self._on_fatal(message, exc, ErrorCategory.CONNECTIVITY)
                    return
                await self._clock().sleep(min(0.25 * 2 ** (failures - 1), 4.0))
            if self.closing:
                return
            if self._reconnect_now:
                self._reconnect_now = False
            else:
                await self._on_lost()

    async def _connect_and_receive(self, attempt: _Attempt) -> None:
        if self._client is None:
            try:
                self._client = make_client(self._name, self._api_key, self._base_url)
            except ValueError as exc:  # neither a key nor a URL: nothing to talk to
                raise RealtimeAuthError(str(exc)) from None
        manager = self._client.realtime.connect(model=self._model())
        try:
            conn = await manager.enter()
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (401, 403):
                raise RealtimeAuthError(f"the OpenAI API key was refused (HTTP {status})") from exc
            raise
        self._conn = conn
        try:
            while True:
                event = await conn.recv()
                if event.type == "session.created":
                    attempt.established = True
                await self._on_event(event)
        except RealtimeAuthError:
            raise
        except Exception:
            if self.closing or self._reconnect_now:
                return
            raise
        finally:
            self._conn = None
            await self._on_gone(not self.closing and not self._reconnect_now)
            await close_quietly(conn)


async def close_quietly(conn: AsyncRealtimeConnection) -> None:
    try:
        await conn.close()
    except Exception as exc:
        logger.debug("closing the Realtime connection: %r", exc)
