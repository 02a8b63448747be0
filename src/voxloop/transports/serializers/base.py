"""What a WebSocket transport needs from a wire format, whichever one a connection speaks."""

from __future__ import annotations

from typing import Protocol

from voxloop.frames import Frame

__all__ = ["FrameSerializer", "SerializationError"]


class SerializationError(ValueError):
    """A frame could not be turned into wire data, or wire data into a frame.

    The message says what was wrong, so the transport can log it, answer the client and go on.
    """


class FrameSerializer(Protocol):
    """Frames to and from one WebSocket message each (binary ``bytes`` or text ``str``).

    Implementations are stateless apart from their limit, so one can serve any number of
    connections, and cheap: they run for every audio chunk in both directions.
    """

    @property
    def max_message_bytes(self) -> int:
        """Incoming messages larger than this are refused before parsing."""
        ...

    def serialize(self, frame: Frame) -> bytes | str | None:
        """The WebSocket message for ``frame`` (bytes: binary, str: text), or None when this kind
        of frame does not go to the client. Raises SerializationError when it belongs on the wire
        but cannot be encoded."""
        ...

    def deserialize(self, data: bytes | str) -> Frame:
        """The frame carried by one WebSocket message from the client; anything that is not a
        usable frame raises SerializationError saying why."""
        ...
