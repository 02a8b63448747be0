"""Frames to and from the plain JSON wire: one RTVI message per WebSocket text frame.

For clients that have no protobuf (a script in any language, an evaluation harness): every
message either way is an RTVI JSON object in a text frame. The client's audio comes as RTVI
``raw-audio`` messages (``{base64Audio, sampleRate, numChannels}``), which pass to the RTVI
processor like any other message and from there into the input transport's audio path, exactly
as the peer's server handles them. The bot's audio leaves as ``bot-tts-audio`` messages
(``{audio, sample_rate, num_channels}``: base64 PCM16, the shape of the peer's model of that
message). Interruptions are told by the RTVI ``bot-interrupted`` message; nothing else leaves.
"""

from __future__ import annotations

import base64
from typing import Any, Final

from voxloop.frames import (
    Frame,
    InputTransportMessageFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
)

from .base import LimitedSerializer, SerializationError, check_whole_samples, decode_json, encode_json

__all__ = ["BOT_AUDIO_TYPE", "JSONFrameSerializer"]

#: The RTVI type of the bot's audio on this wire.
BOT_AUDIO_TYPE: Final = "bot-tts-audio"


class JSONFrameSerializer(LimitedSerializer[str]):
    """Frames to and from RTVI JSON text frames (the ``?wire=json`` WebSocket wire).

    The limit counts UTF-8 bytes. A text frame goes out for RTVI messages and bot audio; nothing else.
    """

    __slots__ = ()

    def _encode(self, frame: Frame) -> str | None:
        if isinstance(frame, OutputAudioRawFrame):
            return _encode_audio(frame)
        if isinstance(frame, OutputTransportMessageFrame | OutputTransportMessageUrgentFrame):
            message = frame.message
            return message if isinstance(message, str) else encode_json(message)
        return None

    def deserialize(self, data: bytes | str) -> Frame:
        """The RTVI message in one text frame, as an InputTransportMessageFrame for the RTVI
        processor (which answers unknown types and invalid data itself)."""
        if not isinstance(data, str):
            raise SerializationError(
                "binary frames are not accepted on the JSON wire: send each RTVI message as JSON "
                "in a text frame, and audio as raw-audio messages",
                "wrong_wire",
            )
        limit = self._max_message_bytes
        # A character is 1 to 4 bytes of UTF-8: count bytes only when it could matter.
        if len(data) > limit // 4 and (size := len(data.encode())) > limit:
            raise SerializationError(f"message of {size} bytes is over the limit of {limit} bytes", "size")
        if not data:
            raise SerializationError("empty message: expected an RTVI JSON object", "empty")
        try:
            message: Any = decode_json(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise SerializationError(f"message is not valid JSON: {exc}", "json") from exc
        if not isinstance(message, dict):
            raise SerializationError(
                f"expected an RTVI message (a JSON object), got a JSON {type(message).__name__}",
                "not_object",
            )
        return InputTransportMessageFrame(message=message)


def _encode_audio(frame: OutputAudioRawFrame) -> str:
    audio = check_whole_samples(frame)
    # Built as text: base64 needs no JSON escaping, and this runs for every chunk (a dict through
    # the JSON encoder took 6x as long: 26 us against 4 us per 20 ms chunk).
    encoded = base64.b64encode(audio).decode("ascii")
    return (
        f'{{"label":"rtvi-ai","type":"{BOT_AUDIO_TYPE}","data":{{"audio":"{encoded}",'
        f'"sample_rate":{int(frame.sample_rate)},"num_channels":{int(frame.num_channels)}}}}}'
    )
