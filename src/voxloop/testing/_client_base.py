"""What every scripted RTVI client of voxloop.testing shares: the records, the waits, the requests.

:class:`~voxloop.testing.RTVIClient` (WebSocket), its WebRTC subclass and
:class:`~voxloop.testing.MemoryClient` (in-process) differ in how messages travel, not in how a
test waits for them, so that part lives here once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, Final, TypeVar

LABEL: Final = "rtvi-ai"
T = TypeVar("T")


class RTVIErrorResponse(Exception):
    """The server answered a request with ``error-response``, as the web client rejects it."""

    def __init__(self, error: str, message: dict[str, Any]) -> None:
        super().__init__(error)
        self.error = error
        self.message = message


class RTVIProtocolError(Exception):
    """The server sent something the published web client would choke on or drop."""


def rtvi_message(type: str, data: Any = None, id: str | None = None) -> dict[str, Any]:
    """An RTVI client message in the web client's key order (a fresh 8-character id unless given)."""
    message: dict[str, Any] = {"label": LABEL, "type": type}
    if data is not None:
        message["data"] = data
    message["id"] = id if id is not None else str(uuid.uuid4())[:8]  # as the web client
    return message


def without_none(**fields: Any) -> dict[str, Any]:
    """JSON.stringify leaves out undefined fields; None plays undefined here."""
    return {key: value for key, value in fields.items() if value is not None}


class ClientBase:
    """Records what the server sent and lets a test wait on it; subclasses fill the records.

    A subclass appends to ``messages``, ``audio`` and ``protocol_errors``, sets ``closed`` when the
    session is over, and calls :meth:`_notify_waiters` after each change.
    """

    closed: asyncio.Event

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.audio = bytearray()
        self.audio_sample_rate: int | None = None
        self.interruptions = 0
        self.protocol_errors: list[str] = []
        self._changed = asyncio.Condition()
        self._errors_raised = 0

    async def send_message(self, type: str, data: Any = None, *, id: str | None = None) -> str:
        raise NotImplementedError

    async def request(self, t: str, d: Any = None, timeout: float = 10) -> Any:
        """``sendClientRequest``: a ``client-message`` answered by ``server-response`` with its id.

        Returns the response's ``d``; an ``error-response`` raises :class:`RTVIErrorResponse`.
        """
        self._check_ready()
        message_id = await self.send_message("client-message", without_none(t=t, d=d))
        answer = await self.wait_for(
            "",
            predicate=lambda m: (
                m.get("id") == message_id and m.get("type") in ("server-response", "error-response")
            ),
            timeout=timeout,
        )
        data = answer.get("data") or {}
        if answer["type"] == "error-response":
            raise RTVIErrorResponse(str(data.get("error")), answer)
        return data.get("d")

    # -- waiting --------------------------------------------------------------------------------

    def of_type(self, type: str) -> list[dict[str, Any]]:
        """Every message of ``type`` received so far."""
        return [m for m in self.messages if m.get("type") == type]

    async def wait_for(
        self,
        type: str,
        *,
        count: int = 1,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 10,
    ) -> dict[str, Any]:
        """The ``count``-th message of ``type`` (any type if empty) matching ``predicate``."""
        found = _NthMatch(self.messages, type, predicate, count)
        return await self._wait_until(found, f"message #{count} of type {type or 'any'!r}", timeout)

    async def wait_for_audio(self, min_bytes: int, timeout: float = 10) -> int:
        """Wait until at least ``min_bytes`` of bot audio have arrived; returns the total so far."""

        def found() -> int | None:
            return len(self.audio) if len(self.audio) >= min_bytes else None

        return await self._wait_until(found, f"{min_bytes} bytes of bot audio", timeout)

    async def _wait_until(self, found: Callable[[], T | None], what: str, timeout: float) -> T:
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    self._raise_protocol_errors()
                    result = found()
                    if result is not None:
                        return result
                    if self.closed.is_set():
                        raise ConnectionError(f"{self._closed_reason()} before {what}")
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"no {what} within {timeout} s") from None

    def _raise_protocol_errors(self) -> None:
        if len(self.protocol_errors) > self._errors_raised:
            new = self.protocol_errors[self._errors_raised :]
            self._errors_raised = len(self.protocol_errors)
            raise RTVIProtocolError("; ".join(new))

    async def _notify_waiters(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- what subclasses may change ---------------------------------------------------------------

    def _closed_reason(self) -> str:
        """How a wait that the end of the session cut short explains it."""
        return "the session closed"

    def _check_ready(self) -> None:
        """Refuse a request the client could not send yet (by default, none)."""


class _NthMatch:
    """The ``count``-th message of ``type`` matching ``predicate`` in a list that only grows.

    Each call looks only at the messages that arrived since the last one, so a wait costs one
    check per message however often it is woken (by every message and every audio chunk).
    """

    def __init__(
        self,
        messages: list[dict[str, Any]],
        type: str,
        predicate: Callable[[dict[str, Any]], bool] | None,
        count: int,
    ) -> None:
        self._messages = messages
        self._type = type
        self._predicate = predicate
        self._left = count  # matches still to find
        self._seen = 0  # messages looked at so far
        self._found: dict[str, Any] | None = None

    def __call__(self) -> dict[str, Any] | None:
        messages, type, predicate = self._messages, self._type, self._predicate
        while self._found is None and self._seen < len(messages):
            message = messages[self._seen]
            self._seen += 1
            if (not type or message.get("type") == type) and (predicate is None or predicate(message)):
                self._left -= 1
                if self._left <= 0:
                    self._found = message
        return self._found
