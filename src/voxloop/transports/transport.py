"""The ``Transport`` protocol: what a bot may rely on, whatever carries the session.

A transport connects one client to one pipeline. A bot's ``create_bot(transport, session)`` gets a
``Transport`` and uses nothing else of it: the two processors, the settings, the client events and
``close()``. WebSocket, WebRTC and the in-memory test transport implement it; a new one (a
telephony media stream, a remote worker) implements it too, and every bot runs on it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

from .base_input import BaseInputTransport
from .base_output import BaseOutputTransport
from .params import TransportParams

__all__ = ["CLIENT_CONNECTED", "CLIENT_DISCONNECTED", "Transport"]

#: Fired once, when the pipeline runs and the client is there (handler: ``(transport)``).
CLIENT_CONNECTED: Final = "on_client_connected"
#: Fired once, when the client has left or the transport was closed (handler: ``(transport)``).
CLIENT_DISCONNECTED: Final = "on_client_disconnected"

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


@runtime_checkable
class Transport(Protocol):
    """One client's session, as a bot sees it.

    - :meth:`input` and :meth:`output` return the same two processors on every call: the input
      (a :class:`BaseInputTransport`) goes right after the ``RTVIProcessor``, the output (a
      :class:`BaseOutputTransport`) after the last processor that makes audio. The bases do the
      work every transport shares (audio conversion, pacing, speaking state, interruption), so a
      transport only moves bytes.
    - ``params``: the audio settings both processors run with.
    - Events ``on_client_connected`` and ``on_client_disconnected``, each fired once per session,
      attached with :meth:`event_handler` or :meth:`add_event_handler`.
    - :meth:`close`: ends the session from the server's side; safe to call twice; once it returns
      the client has been told (where the wire can), ``on_client_disconnected`` has fired and
      every event handler has finished (one still running after a grace period is cancelled; a
      handler that calls ``close()`` itself is not waited for).

    A transport declares itself by subclassing (``class MyTransport(EventSource, Transport)``), so
    mypy checks it provides all of this; ``isinstance(x, Transport)`` works on any object that does.
    """

    params: TransportParams

    def input(self) -> BaseInputTransport:
        """The processor the client's audio and messages enter the pipeline through."""
        ...

    def output(self) -> BaseOutputTransport:
        """The processor that plays the bot to the client."""
        ...

    def add_event_handler(self, event: str, handler: Callable[..., Any]) -> None:
        """Call ``handler(transport, *args)`` whenever ``event`` fires."""
        ...

    def event_handler(self, event: str) -> Callable[[_Handler], _Handler]:
        """Decorator form of :meth:`add_event_handler`."""
        ...

    async def close(self) -> None:
        """End the session from the server's side (see the class docstring)."""
        ...
