"""The model's responses, as state: the current one, and when another may be asked for.

:class:`Response` is one response from ``response.created`` to ``response.done``: whether it is still
active, was interrupted, was closed for the pipeline, its sentence being spoken and its function calls.

:class:`ResponseRequests` coalesces requests: while a response is active (or one was just asked for),
another request waits for its ``response.done``, so the server never refuses one as "already has an
active response"; a request made before the session is set up waits for it. Pure state, no I/O: the
core asks it what to do and sends the ``response.create`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


@dataclass
class Response:
    """One response of the model, from ``response.created`` to ``response.done``."""

    id: str
    active: bool = True
    interrupted: bool = False
    closed: bool = False  # LLMFullResponseEndFrame pushed
    audio_started: bool = False
    text_started: bool = False
    calls: dict[str, tuple[str, str]] = field(default_factory=dict)  # call_id -> (name, arguments)
    segment: int = 0  # id of the sentence being spoken (bot-output progress)
    sentence: str = ""

    @property
    def live(self) -> bool:
        """Whether what it still sends is heard (not after we stopped it)."""
        return not (self.interrupted or self.closed)

    def start_sentence_if_new(self) -> int:
        """The segment id of the sentence a spoken piece belongs to (a new one after a sentence end)."""
        if not self.sentence:
            self.segment += 1
        return self.segment


class Request(Enum):
    """What to do with a request for a response."""

    SEND = "send"  # send ``response.create`` now
    LATER = "later"  # one is active or on its way: asked again at its ``response.done``
    ON_READY = "on_ready"  # the session is not set up yet: asked once it is


@dataclass
class ResponseRequests:
    """Which response is current and whether a ``response.create`` may go now (see the module docstring)."""

    current: Response | None = None
    in_flight: bool = False  # response.create sent, response.created not yet received
    pending: bool = False  # asked while busy: ask at the next response.done
    on_ready: bool = False  # asked before the session was set up
    retried: bool = False  # one "already has an active response" refusal was retried

    @property
    def active(self) -> bool:
        return self.current is not None and self.current.active

    def request(self, *, ready: bool) -> Request:
        if not ready:
            self.on_ready = True
            return Request.ON_READY
        if self.in_flight or self.active:
            self.pending = True
            return Request.LATER
        self.in_flight = True
        return Request.SEND

    def opened(self, response_id: str) -> Response:
        """``response.created``: this is the current response now."""
        self.current = Response(response_id)
        self.in_flight = False
        self.retried = False
        return self.current

    def live(self, response_id: str) -> Response | None:
        """The current response if it is ``response_id`` and still heard; None for one we stopped."""
        response = self.current
        if response is None or response.id != response_id or not response.live:
            return None
        return response

    def finished(self, response_id: str | None) -> Response | None:
        """``response.done``: the current response if it is ``response_id`` (now inactive), else None."""
        response = self.current
        if response is None or response.id != response_id:
            return None
        response.active = False
        return response

    def refused_as_busy(self) -> None:
        """The server still had an active response: ask once more when it is done (not forever)."""
        self.in_flight = False
        if not self.retried:
            self.retried = True
            self.pending = True

    def failed(self) -> None:
        """The ``response.create`` was refused for another reason: nothing is on its way."""
        self.in_flight = False

    def take_pending(self) -> bool:
        pending, self.pending = self.pending, False
        return pending

    def take_on_ready(self) -> bool:
        """The session is set up: whether a request waited for it (or for a response that was lost)."""
        waiting = self.on_ready or self.pending
        self.on_ready = self.pending = False
        return waiting

    def connection_lost(self, *, resume: bool) -> Response | None:
        """The connection is gone; returns the response it cut off, if one was active. ``resume``:
        ask again once reconnected (unless the user had interrupted it)."""
        self.in_flight = False
        response = self.current
        if response is None or not response.active:
            return None
        response.active = False
        if resume and not response.interrupted:
            self.on_ready = True
        return response
