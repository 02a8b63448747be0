"""What a WebSocket transport needs from a wire format, whichever one a connection speaks."""

from __future__ import annotations

import json
from typing import Final, Generic, Protocol, TypeVar

from voxloop.frames import Frame, OutputAudioRawFrame

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "FrameSerializer", "LimitedSerializer", "SerializationError"]

#: The published WebSocket client's own message limit (1 MiB); nothing legitimate is larger.
DEFAULT_MAX_MESSAGE_BYTES: Final = 1024 * 1024

# Built once: json.dumps with keyword arguments builds a new encoder on every call. Compact, UTF-8
# as is (smaller than \u escapes; the client's JSON.parse reads both), and no NaN/Infinity, which
# Python would emit but the client's JSON.parse rejects.
encode_json: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
decode_json: Final = json.JSONDecoder().decode

WireT = TypeVar("WireT", bytes, str)


class SerializationError(ValueError):
    """A frame could not be turned into wire data, or wire data into a frame.

    The message says what was wrong, so the transport can log it, answer the client and go on;
    ``kind`` names the sort of problem (a fixed word per check, never text from the client), so a
    flood of alike bad frames is answered once rather than once per frame.
    """

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


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


def check_whole_samples(frame: OutputAudioRawFrame) -> bytes:
    """The frame's audio, or SerializationError when it ends in half a sample.

    The client plays the bytes as an Int16Array, which cannot hold half a sample.
    """
    audio = frame.audio
    if len(audio) & 1:
        raise SerializationError(
            f"{frame.name}: audio has {len(audio)} bytes, not a whole number of 16-bit samples"
        )
    return audio


class LimitedSerializer(Generic[WireT]):
    """A :class:`FrameSerializer` with an incoming size limit; subclasses write :meth:`_encode`.

    Stateless apart from its limit, so one instance can serve any number of connections.
    """

    __slots__ = ("_max_message_bytes",)

    def __init__(self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_message_bytes < 1:
            raise ValueError(f"max_message_bytes must be at least 1, got {max_message_bytes}")
        self._max_message_bytes = max_message_bytes

    @property
    def max_message_bytes(self) -> int:
        """Incoming messages larger than this are refused before parsing."""
        return self._max_message_bytes

    def serialize(self, frame: Frame) -> WireT | None:
        """The wire data for ``frame``, or None when this kind of frame does not go to the client.

        Raises SerializationError when the frame belongs on the wire but cannot be encoded (odd
        audio length, a message that is not JSON-serializable, a value out of range).
        """
        try:
            return self._encode(frame)
        except SerializationError:
            raise
        except (ValueError, TypeError, RecursionError) as exc:
            raise SerializationError(f"cannot serialize {frame.name}: {exc}") from exc

    def _encode(self, frame: Frame) -> WireT | None:
        raise NotImplementedError

    def deserialize(self, data: bytes | str) -> Frame:
        raise NotImplementedError
