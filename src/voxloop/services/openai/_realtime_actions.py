"""What the Realtime core asks its I/O shell to do: the actions, and the client events it sends.

The core (:class:`~voxloop.services.openai._realtime_core.RealtimeCore`) never awaits anything: every
input returns a list of these, which the service executes in order. :class:`Outbox` gives each client
event its ``event_id`` and remembers what the recent ones were, so a server ``error`` that names an
event can be told apart (a refused truncation is not a refused ``response.create``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...frames import ErrorCategory, Frame, LLMTokenUsage
from ...pipeline import DOWNSTREAM, FrameDirection

Call = tuple[str, str, str]  # (call_id, name, arguments JSON), as the function runner takes them

_SENT_MEMORY = 128


@dataclass(slots=True)
class Send:
    """Send one client event (a ``RealtimeClientEventParam`` dict, ``event_id`` included)."""

    event: dict[str, Any]
    what: str  # a short name for logs ("append", "truncate", "response.create"...)


@dataclass(slots=True)
class Push:
    """Push a frame from the service."""

    frame: Frame
    direction: FrameDirection = DOWNSTREAM


@dataclass(slots=True)
class AudioLeaving:
    """The bot's audio that follows is pushed now: the shell reports the time of that to
    :meth:`~._realtime_core.RealtimeCore.audio_leaving` (playback starts when the output gets it, after
    the frames before it, so the time is taken here and not when the server event arrived)."""

    item_id: str
    content_index: int
    nbytes: int


@dataclass(slots=True)
class StartMetrics:
    """A response is being waited for: start TTFB and processing time."""


@dataclass(slots=True)
class StopTTFB:
    """The first audio or text of a response arrived."""


@dataclass(slots=True)
class StopProcessing:
    """A response is over."""


@dataclass(slots=True)
class ReportUsage:
    usage: LLMTokenUsage


@dataclass(slots=True)
class ReportError:
    """A non-fatal error for the app and the client (``on_error``, then an ``ErrorFrame`` upstream)."""

    message: str
    category: ErrorCategory


@dataclass(slots=True)
class StartCalls:
    """Run the model's function calls through the function runner."""

    calls: list[Call]


@dataclass(slots=True)
class InterruptCalls:
    """The user cut in: the function runner cancels the calls registered to be cancelled."""


@dataclass(slots=True)
class BroadcastInterruption:
    """The server heard the user barge in: interrupt the pipeline in both directions."""


@dataclass(slots=True)
class Connected:
    """The session is set up (``on_connected``); ``first``: not a reconnection."""

    first: bool


@dataclass(slots=True)
class Configured:
    """The server confirmed the session (``session.updated``): :meth:`wait_until_ready` returns."""


@dataclass(slots=True)
class Reconnect:
    """Start a fresh server conversation: close this connection, the shell connects again."""


@dataclass(slots=True)
class ItemRetrieved:
    """The answer to :meth:`~._realtime_core.RealtimeCore.retrieve_item`: the server's item, or why
    there is none (``error``)."""

    item_id: str
    item: Any = None
    error: str | None = None


@dataclass(slots=True)
class ItemEvent:
    """A conversation item the server added or finished: the app's ``event`` handler is called
    with ``(item_id, item)`` (``on_conversation_item_created`` / ``on_conversation_item_updated``)."""

    event: str
    item_id: str
    item: Any


@dataclass(slots=True)
class AuthRefused:
    """The server refused the API key: fatal."""

    message: str


Action = (
    Send
    | Push
    | AudioLeaving
    | StartMetrics
    | StopTTFB
    | StopProcessing
    | ReportUsage
    | ReportError
    | StartCalls
    | InterruptCalls
    | BroadcastInterruption
    | Connected
    | Configured
    | Reconnect
    | ItemRetrieved
    | ItemEvent
    | AuthRefused
)


@dataclass
class Outbox:
    """Client events with their ids, and what the recent ones were (audio appends are not remembered)."""

    _count: int = 0
    _sent: dict[str, str] = field(default_factory=dict)  # event id -> what

    def event(self, what: str, event_type: str, *, event_id: str | None = None, **fields: Any) -> Send:
        self._count += 1
        event_id = event_id or f"vx_{what.replace('.', '_')}_{self._count}"
        if what != "append":
            self._sent[event_id] = what
            if len(self._sent) > _SENT_MEMORY:
                self._sent.pop(next(iter(self._sent)))
        return Send({"type": event_type, "event_id": event_id, **fields}, what)

    def what(self, event_id: str | None) -> str:
        """What the event ``event_id`` was ("" when unknown or forgotten)."""
        return self._sent.get(event_id or "", "")
