"""Frames to and from the WebSocket wire: one protobuf ``pipecat.Frame`` per binary message.

This is the carrier the published Pipecat WebSocket clients speak: RTVI messages travel as JSON in
``message`` frames, microphone audio arrives in ``audio`` frames (512 bytes every 16 ms) and bot
audio leaves in them. The schema is ``frames.proto`` next to this module.

It runs for every audio chunk in both directions, so it is plain synchronous code with a dictionary
lookup for dispatch and prebuilt JSON codecs. Each call builds a fresh protobuf message on purpose:
with the upb backend a reused message keeps every byte ever assigned or parsed in its arena until
the message dies (``Clear()`` does not give it back), so reuse would leak about one audio chunk per
call over a long session, and it is not faster either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

# protobuf ships no type information; the types-protobuf stubs are optional.
from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]

from voxloop.frames import (
    Frame,
    InputAudioRawFrame,
    InputTextRawFrame,
    InputTransportMessageFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    TextFrame,
    TranscriptionFrame,
)

from . import frames_pb2
from .base import (
    DEFAULT_MAX_MESSAGE_BYTES,
    LimitedSerializer,
    SerializationError,
    check_whole_samples,
    decode_json,
    encode_json,
)

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "ProtobufFrameSerializer", "SerializationError"]

_WireFrame = frames_pb2.Frame


# --- server -> client ------------------------------------------------------------------------


def _encode_audio(frame: OutputAudioRawFrame) -> bytes:
    audio = check_whole_samples(frame)
    msg = _WireFrame()
    wire = msg.audio
    wire.id = frame.id
    wire.audio = audio
    wire.sample_rate = frame.sample_rate
    wire.num_channels = frame.num_channels
    if frame.pts is not None:
        wire.pts = frame.pts
    wire_bytes: bytes = msg.SerializeToString()
    return wire_bytes


def _encode_message(frame: OutputTransportMessageFrame | OutputTransportMessageUrgentFrame) -> bytes:
    message = frame.message
    data = message if isinstance(message, str) else encode_json(message)
    msg = _WireFrame()
    msg.message.data = data
    wire_bytes: bytes = msg.SerializeToString()
    return wire_bytes


def _encode_text(frame: TextFrame) -> bytes:
    msg = _WireFrame()
    wire = msg.text
    wire.id = frame.id
    wire.text = frame.text
    wire_bytes: bytes = msg.SerializeToString()
    return wire_bytes


def _encode_transcription(frame: TranscriptionFrame) -> bytes:
    msg = _WireFrame()
    wire = msg.transcription
    wire.id = frame.id
    wire.text = frame.text
    wire.user_id = frame.user_id
    wire.timestamp = frame.timestamp
    wire_bytes: bytes = msg.SerializeToString()
    return wire_bytes


def _encode_interruption(frame: InterruptionFrame) -> bytes:
    msg = _WireFrame()
    msg.interruption.id = frame.id
    wire_bytes: bytes = msg.SerializeToString()
    return wire_bytes


# Exact classes only: a subclass of TextFrame (an LLM token, an input text, an interim
# transcription) is pipeline-internal and stays off the wire. Audio and messages are the exception,
# handled in ``serialize``: every kind of output audio is audio, every output message a message.
_ENCODERS: Final[dict[type[Frame], Callable[[Any], bytes]]] = {
    OutputAudioRawFrame: _encode_audio,
    OutputTransportMessageFrame: _encode_message,
    OutputTransportMessageUrgentFrame: _encode_message,
    TextFrame: _encode_text,
    TranscriptionFrame: _encode_transcription,
    InterruptionFrame: _encode_interruption,
}


# --- client -> server ------------------------------------------------------------------------


def _decode_audio(msg: frames_pb2.Frame) -> Frame:
    wire = msg.audio
    audio: bytes = wire.audio
    sample_rate: int = wire.sample_rate
    num_channels: int = wire.num_channels
    if not audio:
        raise SerializationError("audio frame has no audio bytes", "empty_audio")
    if not sample_rate:
        raise SerializationError("audio frame has sample_rate 0", "sample_rate")
    if not num_channels:
        raise SerializationError("audio frame has num_channels 0", "num_channels")
    if len(audio) % (2 * num_channels):
        raise SerializationError(
            f"audio frame has {len(audio)} bytes, not a whole number of 16-bit samples "
            f"for {num_channels} channel(s)",
            "length",
        )
    # The wire's id, name and pts are the client's own numbering and clock, not ours: a frame
    # keeps the process-unique id it was created with.
    return InputAudioRawFrame(audio=audio, sample_rate=sample_rate, num_channels=num_channels)


def _decode_message(msg: frames_pb2.Frame) -> Frame:
    data: str = msg.message.data
    try:
        payload = decode_json(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise SerializationError(f"message is not valid JSON: {exc}", "json") from exc
    return InputTransportMessageFrame(message=payload)


def _decode_text(msg: frames_pb2.Frame) -> Frame:
    return InputTextRawFrame(text=msg.text.text)


def _decode_transcription(msg: frames_pb2.Frame) -> Frame:
    wire = msg.transcription
    return TranscriptionFrame(text=wire.text, user_id=wire.user_id, timestamp=wire.timestamp)


def _decode_interruption(msg: frames_pb2.Frame) -> Frame:
    return InterruptionFrame()


# Keyed by the name ``WhichOneof("frame")`` returns.
_DECODERS: Final[dict[str | None, Callable[[Any], Frame]]] = {
    "audio": _decode_audio,
    "message": _decode_message,
    "text": _decode_text,
    "transcription": _decode_transcription,
    "interruption": _decode_interruption,
}


class ProtobufFrameSerializer(LimitedSerializer[bytes]):
    """Frames to and from protobuf ``pipecat.Frame`` bytes, as the WebSocket clients expect.

    Stateless apart from its limit, so one instance can serve any number of connections.
    """

    __slots__ = ()

    def _encode(self, frame: Frame) -> bytes | None:
        encode = _ENCODERS.get(type(frame))
        if encode is not None:
            return encode(frame)
        if isinstance(frame, OutputAudioRawFrame):
            return _encode_audio(frame)
        if isinstance(frame, OutputTransportMessageFrame | OutputTransportMessageUrgentFrame):
            return _encode_message(frame)
        return None

    def deserialize(self, data: bytes | str) -> Frame:
        """The frame carried by one binary WebSocket message from the client.

        Never returns None: anything that is not a usable frame raises SerializationError, so the
        caller can tell the client what was wrong.
        """
        if isinstance(data, str):
            raise SerializationError(
                "expected binary data, got str: text frames are not accepted on the protobuf wire "
                "(connect with ?wire=json to speak RTVI JSON in text frames)",
                "wrong_wire",
            )
        size = len(data)
        if size > self._max_message_bytes:
            raise SerializationError(
                f"message of {size} bytes is over the limit of {self._max_message_bytes} bytes",
                "size",
            )
        if not size:
            raise SerializationError("empty message: expected a protobuf pipecat.Frame", "empty")
        try:
            msg = _WireFrame.FromString(data)
        except DecodeError as exc:
            raise SerializationError(f"not a protobuf pipecat.Frame: {exc}", "undecodable") from exc
        except TypeError as exc:  # neither bytes nor str
            raise SerializationError(
                f"expected binary data, got {type(data).__name__}: the wire is binary protobuf",
                "wrong_wire",
            ) from exc
        kind = msg.WhichOneof("frame")
        decode = _DECODERS.get(kind)
        if decode is None:
            raise SerializationError(
                "pipecat.Frame has no known kind set "
                "(expected one of text, audio, transcription, message, interruption)",
                "unknown_kind",
            )
        return decode(msg)
