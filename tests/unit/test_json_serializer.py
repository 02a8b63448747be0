"""The plain JSON wire's serializer, and how a connection picks its wire."""

from __future__ import annotations

import base64
import json

import pytest

from voxloop import frames as f
from voxloop.rtvi.messages import validate_server_message
from voxloop.transports.serializers import (
    JSONFrameSerializer,
    ProtobufFrameSerializer,
    SerializationError,
    serializer_for_wire,
)


@pytest.fixture
def ser() -> JSONFrameSerializer:
    return JSONFrameSerializer()


def test_messages_leave_as_compact_json_text(ser: JSONFrameSerializer) -> None:
    message = {"label": "rtvi-ai", "type": "bot-llm-text", "data": {"text": "Grüße"}}
    for cls in (f.OutputTransportMessageUrgentFrame, f.OutputTransportMessageFrame):
        text = ser.serialize(cls(message=message))
        assert text == '{"label":"rtvi-ai","type":"bot-llm-text","data":{"text":"Grüße"}}'


def test_bot_audio_leaves_as_a_bot_tts_audio_message(ser: JSONFrameSerializer) -> None:
    pcm = bytes(range(256)) * 2
    for cls in (f.OutputAudioRawFrame, f.TTSAudioRawFrame):
        text = ser.serialize(cls(audio=pcm, sample_rate=24000, num_channels=1))
        assert isinstance(text, str)
        message = json.loads(text)
        validate_server_message(message)
        assert message["type"] == "bot-tts-audio"
        assert message["data"]["sample_rate"] == 24000 and message["data"]["num_channels"] == 1
        assert base64.b64decode(message["data"]["audio"]) == pcm


def test_half_a_sample_is_refused(ser: JSONFrameSerializer) -> None:
    with pytest.raises(SerializationError, match="3 bytes"):
        ser.serialize(f.OutputAudioRawFrame(audio=b"\0\0\0", sample_rate=24000, num_channels=1))


def test_a_message_that_is_not_json_serializable_is_refused(ser: JSONFrameSerializer) -> None:
    with pytest.raises(SerializationError, match="cannot serialize"):
        ser.serialize(f.OutputTransportMessageUrgentFrame(message={"x": float("nan")}))


@pytest.mark.parametrize("frame", [f.InterruptionFrame(), f.TextFrame("hi"), f.StartFrame()])
def test_other_frames_stay_off_the_wire(ser: JSONFrameSerializer, frame: f.Frame) -> None:
    assert ser.serialize(frame) is None


def test_a_text_frame_becomes_a_message_for_the_rtvi_processor(ser: JSONFrameSerializer) -> None:
    frame = ser.deserialize('{"label":"rtvi-ai","type":"client-ready","id":"a1","data":{"version":"2.1.0"}}')
    assert isinstance(frame, f.InputTransportMessageFrame)
    assert frame.message == {
        "label": "rtvi-ai",
        "type": "client-ready",
        "id": "a1",
        "data": {"version": "2.1.0"},
    }


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b'{"label":"rtvi-ai"}', "binary frames are not accepted on the JSON wire"),
        ("", "empty message"),
        ('{"label": ', "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ('"client-ready"', "got a JSON str"),
        ("null", "got a JSON NoneType"),
    ],
)
def test_bad_input_is_refused_saying_why(ser: JSONFrameSerializer, data: bytes | str, error: str) -> None:
    with pytest.raises(SerializationError, match=error):
        ser.deserialize(data)


def test_the_size_limit_counts_utf8_bytes() -> None:
    ser = JSONFrameSerializer(max_message_bytes=100)
    fits = json.dumps({"t": "x" * 80})
    assert isinstance(ser.deserialize(fits), f.InputTransportMessageFrame)
    wide = json.dumps({"t": "€" * 40}, ensure_ascii=False)  # 49 characters, 129 bytes
    with pytest.raises(SerializationError, match="129 bytes is over the limit of 100"):
        ser.deserialize(wide)


def test_a_connection_picks_its_wire_by_name() -> None:
    assert isinstance(serializer_for_wire(None), ProtobufFrameSerializer)
    assert isinstance(serializer_for_wire(""), ProtobufFrameSerializer)
    assert isinstance(serializer_for_wire("protobuf"), ProtobufFrameSerializer)
    assert isinstance(serializer_for_wire("json"), JSONFrameSerializer)
    with pytest.raises(ValueError, match="unknown wire 'JSON': use one of json, protobuf"):
        serializer_for_wire("JSON")
