"""The protobuf WebSocket wire: schema, the client's real bytes, round trips and every refusal."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from google.protobuf.descriptor import FieldDescriptor  # type: ignore[import-untyped, unused-ignore]

from voxloop import frames as f
from voxloop.transports.serializers import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ProtobufFrameSerializer,
    SerializationError,
)
from voxloop.transports.serializers import frames_pb2 as pb

U64, U32 = FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_UINT32
STR, BYTES, MSG = FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_MESSAGE

# The published client's schema (reference: peer-pipecat.md 4.6, rtvi-protocol.md 3.2).
EXPECTED_SCHEMA: dict[str, dict[str, tuple[int, int]]] = {
    "TextFrame": {"id": (1, U64), "name": (2, STR), "text": (3, STR)},
    "AudioRawFrame": {
        "id": (1, U64),
        "name": (2, STR),
        "audio": (3, BYTES),
        "sample_rate": (4, U32),
        "num_channels": (5, U32),
        "pts": (6, U64),
    },
    "TranscriptionFrame": {
        "id": (1, U64),
        "name": (2, STR),
        "text": (3, STR),
        "user_id": (4, STR),
        "timestamp": (5, STR),
    },
    "MessageFrame": {"data": (1, STR)},
    "InterruptionFrame": {"id": (1, U64), "name": (2, STR)},
    "Frame": {
        "text": (1, MSG),
        "audio": (2, MSG),
        "transcription": (3, MSG),
        "message": (4, MSG),
        "interruption": (5, MSG),
    },
}

# What the client sends first, as observed on the wire (rtvi-protocol.md 3.3).
CLIENT_READY_PREFIX = bytes.fromhex("22 a2 02 0a 9f 02 7b 22 6c 61 62 65")
MIC_HEADER = bytes.fromhex("12 8f 04 12 05 61 75 64 69 6f 1a 80 04")
MIC_TRAILER = bytes.fromhex("20 80 7d 28 01")


@pytest.fixture
def ser() -> ProtobufFrameSerializer:
    return ProtobufFrameSerializer()


def client_ready_json() -> str:
    """A client-ready message shaped like the client's, padded to the observed 287 bytes."""
    message = {
        "label": "rtvi-ai",
        "type": "client-ready",
        "data": {
            "version": "1.2.0",
            "about": {
                "library": "@pipecat-ai/client-js",
                "library_version": "1.13.1",
                "platform": "",
            },
        },
        "id": "cbff7333",
    }
    short = len(json.dumps(message, separators=(",", ":")).encode())
    message["data"]["about"]["platform"] = "x" * (287 - short)  # type: ignore[index]
    text = json.dumps(message, separators=(",", ":"))
    assert len(text.encode()) == 287
    return text


def pcm(num_bytes: int) -> bytes:
    return bytes(i * 7 % 256 for i in range(num_bytes))


# --- schema -----------------------------------------------------------------------------------


def test_schema_matches_the_reference_field_for_field() -> None:
    assert pb.DESCRIPTOR.package == "pipecat"
    assert set(pb.DESCRIPTOR.message_types_by_name) == set(EXPECTED_SCHEMA)
    for message_name, fields in EXPECTED_SCHEMA.items():
        descriptor = pb.DESCRIPTOR.message_types_by_name[message_name]
        actual = {field.name: (field.number, field.type) for field in descriptor.fields}
        assert actual == fields, message_name
        for field in descriptor.fields:  # protobuf 7 dropped ``label`` for ``is_repeated``
            repeated = getattr(field, "is_repeated", None)
            if repeated is None:
                repeated = field.label == FieldDescriptor.LABEL_REPEATED
            assert not repeated, (message_name, field.name)


def test_envelope_kinds_are_one_oneof_with_the_right_message_types() -> None:
    frame = pb.DESCRIPTOR.message_types_by_name["Frame"]
    assert [o.name for o in frame.oneofs] == ["frame"]
    assert [field.name for field in frame.oneofs[0].fields] == [
        "text",
        "audio",
        "transcription",
        "message",
        "interruption",
    ]
    targets = {field.name: field.message_type.full_name for field in frame.fields}
    assert targets == {
        "text": "pipecat.TextFrame",
        "audio": "pipecat.AudioRawFrame",
        "transcription": "pipecat.TranscriptionFrame",
        "message": "pipecat.MessageFrame",
        "interruption": "pipecat.InterruptionFrame",
    }


def test_only_pts_has_explicit_presence() -> None:
    audio = pb.DESCRIPTOR.message_types_by_name["AudioRawFrame"]
    present = [field.name for field in audio.fields if field.has_presence]
    assert present == ["pts"]


# --- the client's real bytes --------------------------------------------------------------------


def test_client_ready_bytes_decode_to_the_rtvi_message(ser: ProtobufFrameSerializer) -> None:
    text = client_ready_json()
    wire = bytes.fromhex("22 a2 02 0a 9f 02") + text.encode()
    assert len(wire) == 293
    assert wire.startswith(CLIENT_READY_PREFIX)

    frame = ser.deserialize(wire)

    assert isinstance(frame, f.InputTransportMessageFrame)
    assert frame.message == json.loads(text)
    assert frame.message["type"] == "client-ready"


def test_our_message_bytes_match_what_the_client_sends(ser: ProtobufFrameSerializer) -> None:
    text = client_ready_json()
    wire = ser.serialize(f.OutputTransportMessageUrgentFrame(message=json.loads(text)))
    assert wire is not None
    assert wire.startswith(CLIENT_READY_PREFIX)
    assert wire == bytes.fromhex("22 a2 02 0a 9f 02") + text.encode()


def test_client_mic_audio_frame_decodes(ser: ProtobufFrameSerializer) -> None:
    samples = pcm(512)
    wire = MIC_HEADER + samples + MIC_TRAILER
    assert len(wire) == 530

    frame = ser.deserialize(wire)

    assert type(frame) is f.InputAudioRawFrame
    assert frame.audio == samples
    assert (frame.sample_rate, frame.num_channels) == (16000, 1)
    assert frame.num_frames == 256
    assert frame.pts is None


def test_schema_reproduces_the_client_mic_bytes_exactly() -> None:
    samples = pcm(512)
    built = pb.Frame(
        audio=pb.AudioRawFrame(name="audio", audio=samples, sample_rate=16000, num_channels=1)
    ).SerializeToString()
    assert built == MIC_HEADER + samples + MIC_TRAILER


# --- server -> client ---------------------------------------------------------------------------


def test_bot_audio_is_parsed_by_the_same_schema(ser: ProtobufFrameSerializer) -> None:
    frame = f.OutputAudioRawFrame(pcm(960), 24000, 1)
    wire = ser.serialize(frame)
    assert wire is not None
    assert wire[0] == 0x12  # field 2 (audio), length-delimited

    parsed = pb.Frame.FromString(wire)

    assert parsed.WhichOneof("frame") == "audio"
    assert parsed.audio.audio == frame.audio
    assert (parsed.audio.sample_rate, parsed.audio.num_channels) == (24000, 1)
    assert parsed.audio.id == frame.id
    assert not parsed.audio.HasField("pts")


def test_bot_audio_pts_goes_on_the_wire_when_set(ser: ProtobufFrameSerializer) -> None:
    frame = f.OutputAudioRawFrame(pcm(4), 24000, 2)
    frame.pts = 1_500_000_000
    wire = ser.serialize(frame)
    assert wire is not None
    parsed = pb.Frame.FromString(wire)
    assert parsed.audio.HasField("pts")
    assert parsed.audio.pts == 1_500_000_000
    assert parsed.audio.num_channels == 2


@pytest.mark.parametrize("cls", [f.TTSAudioRawFrame, f.SpeechOutputAudioRawFrame])
def test_output_audio_subclasses_are_audio(ser: ProtobufFrameSerializer, cls: type) -> None:
    wire = ser.serialize(cls(pcm(8), 24000, 1))
    assert wire is not None
    parsed = pb.Frame.FromString(wire)
    assert parsed.WhichOneof("frame") == "audio"
    assert parsed.audio.audio == pcm(8)


def test_message_json_is_compact_and_keeps_unicode(ser: ProtobufFrameSerializer) -> None:
    message = {"label": "rtvi-ai", "type": "bot-output", "data": {"text": "héllo — 你好", "n": [1, 2]}}
    wire = ser.serialize(f.OutputTransportMessageFrame(message=message))
    assert wire is not None
    data = pb.Frame.FromString(wire).message.data
    assert data == '{"label":"rtvi-ai","type":"bot-output","data":{"text":"héllo — 你好","n":[1,2]}}'


def test_message_that_is_already_a_string_is_sent_as_is(ser: ProtobufFrameSerializer) -> None:
    text = '{ "label" : "rtvi-ai" }'
    wire = ser.serialize(f.OutputTransportMessageFrame(message=text))
    assert wire is not None
    assert pb.Frame.FromString(wire).message.data == text


def test_empty_message_still_sets_the_kind(ser: ProtobufFrameSerializer) -> None:
    wire = ser.serialize(f.OutputTransportMessageFrame(message=""))
    assert wire == b'"\x00'
    assert pb.Frame.FromString(wire).WhichOneof("frame") == "message"


def test_text_transcription_and_interruption_encode_their_fields(
    ser: ProtobufFrameSerializer,
) -> None:
    text = f.TextFrame("hello")
    parsed = pb.Frame.FromString(ser.serialize(text) or b"")
    assert (parsed.WhichOneof("frame"), parsed.text.text, parsed.text.id) == ("text", "hello", text.id)

    tr = f.TranscriptionFrame("hi there", user_id="u1", timestamp="2025-01-01T00:00:00Z")
    parsed = pb.Frame.FromString(ser.serialize(tr) or b"")
    assert parsed.WhichOneof("frame") == "transcription"
    got = (parsed.transcription.text, parsed.transcription.user_id, parsed.transcription.timestamp)
    assert got == ("hi there", "u1", "2025-01-01T00:00:00Z")

    interruption = f.InterruptionFrame()
    parsed = pb.Frame.FromString(ser.serialize(interruption) or b"")
    assert parsed.WhichOneof("frame") == "interruption"
    assert parsed.interruption.id == interruption.id


@pytest.mark.parametrize(
    "frame",
    [
        f.LLMTextFrame("token"),
        f.TTSTextFrame("spoken"),
        f.InputTextRawFrame("typed"),
        f.InterimTranscriptionFrame("partial", user_id="u", timestamp="t"),
        f.InputAudioRawFrame(pcm(4), 16000, 1),
        f.InputTransportMessageFrame(message={"a": 1}),
        f.EndFrame(),
        f.BotStartedSpeakingFrame(),
        f.TTSSpeakFrame("say"),
    ],
    ids=lambda frame: type(frame).__name__,
)
def test_frames_not_for_the_wire_serialize_to_none(ser: ProtobufFrameSerializer, frame: f.Frame) -> None:
    assert ser.serialize(frame) is None


# --- round trips --------------------------------------------------------------------------------


def test_round_trip_audio(ser: ProtobufFrameSerializer) -> None:
    out = f.OutputAudioRawFrame(pcm(640), 16000, 1)
    back = ser.deserialize(ser.serialize(out) or b"")
    assert type(back) is f.InputAudioRawFrame
    assert (back.audio, back.sample_rate, back.num_channels) == (out.audio, 16000, 1)


def test_round_trip_stereo_audio(ser: ProtobufFrameSerializer) -> None:
    out = f.OutputAudioRawFrame(pcm(1920), 48000, 2)
    back = ser.deserialize(ser.serialize(out) or b"")
    assert isinstance(back, f.InputAudioRawFrame)
    assert (back.audio, back.sample_rate, back.num_channels) == (out.audio, 48000, 2)


@pytest.mark.parametrize("cls", [f.OutputTransportMessageFrame, f.OutputTransportMessageUrgentFrame])
def test_round_trip_message(ser: ProtobufFrameSerializer, cls: type) -> None:
    message = {"label": "rtvi-ai", "type": "x", "data": {"a": [1, 2.5, None, True], "b": "ü"}}
    back = ser.deserialize(ser.serialize(cls(message=message)) or b"")
    assert type(back) is f.InputTransportMessageFrame
    assert back.message == message


def test_round_trip_text(ser: ProtobufFrameSerializer) -> None:
    back = ser.deserialize(ser.serialize(f.TextFrame("type me")) or b"")
    assert type(back) is f.InputTextRawFrame
    assert back.text == "type me"


def test_round_trip_transcription(ser: ProtobufFrameSerializer) -> None:
    out = f.TranscriptionFrame("what time is it", user_id="user-7", timestamp="t0")
    back = ser.deserialize(ser.serialize(out) or b"")
    assert type(back) is f.TranscriptionFrame
    assert (back.text, back.user_id, back.timestamp) == ("what time is it", "user-7", "t0")


def test_round_trip_interruption(ser: ProtobufFrameSerializer) -> None:
    back = ser.deserialize(ser.serialize(f.InterruptionFrame()) or b"")
    assert type(back) is f.InterruptionFrame


def test_wire_id_name_and_pts_do_not_override_ours(ser: ProtobufFrameSerializer) -> None:
    wire = pb.Frame(
        audio=pb.AudioRawFrame(
            id=2**63, name="audio", audio=pcm(4), sample_rate=16000, num_channels=1, pts=99
        )
    ).SerializeToString()
    frame = ser.deserialize(wire)
    assert frame.id != 2**63
    assert frame.pts is None
    assert frame.name == f"InputAudioRawFrame#{frame.id}"


# --- refusals: client -> server -----------------------------------------------------------------


def test_error_is_a_value_error() -> None:
    assert issubclass(SerializationError, ValueError)


@pytest.mark.parametrize(
    "garbage", [b"\xff\xff\xff", b"hello", bytes(range(256))], ids=["ff", "ascii", "ramp"]
)
def test_garbage_bytes(ser: ProtobufFrameSerializer, garbage: bytes) -> None:
    with pytest.raises(SerializationError, match=r"not a protobuf pipecat\.Frame"):
        ser.deserialize(garbage)


def test_invalid_utf8_in_a_string_field(ser: ProtobufFrameSerializer) -> None:
    wire = bytes.fromhex("22 05 0a 03 ff fe fd")  # message.data = 3 bytes that are not UTF-8
    with pytest.raises(SerializationError, match="UTF-8"):
        ser.deserialize(wire)


def test_empty_bytes(ser: ProtobufFrameSerializer) -> None:
    with pytest.raises(SerializationError, match="empty message"):
        ser.deserialize(b"")


def test_frame_with_no_kind(ser: ProtobufFrameSerializer) -> None:
    # Field 6 (varint): well-formed protobuf, but no kind this side knows.
    with pytest.raises(SerializationError, match="no known kind"):
        ser.deserialize(b"\x30\x01")


def test_text_websocket_message_is_refused(ser: ProtobufFrameSerializer) -> None:
    with pytest.raises(SerializationError, match="expected binary data, got str"):
        ser.deserialize('{"label":"rtvi-ai"}')  # type: ignore[arg-type]


def test_oversize_is_refused_before_parsing() -> None:
    ser = ProtobufFrameSerializer(max_message_bytes=100)
    with pytest.raises(SerializationError, match="101 bytes is over the limit of 100"):
        ser.deserialize(b"\xff" * 101)  # garbage: parsing would have said something else
    exactly = pb.Frame(message=pb.MessageFrame(data='"' + "a" * 94 + '"')).SerializeToString()
    assert len(exactly) == 100
    assert ser.deserialize(exactly).message == "a" * 94  # type: ignore[attr-defined]


def test_default_limit_is_the_clients_one_mib(ser: ProtobufFrameSerializer) -> None:
    assert DEFAULT_MAX_MESSAGE_BYTES == ser.max_message_bytes == 1024 * 1024
    with pytest.raises(SerializationError, match="over the limit"):
        ser.deserialize(bytes(1024 * 1024 + 1))


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ProtobufFrameSerializer(max_message_bytes=0)


@pytest.mark.parametrize("data", ["{not json", "", '{"a": 1', "undefined"])
def test_message_that_is_not_json(ser: ProtobufFrameSerializer, data: str) -> None:
    wire = pb.Frame(message=pb.MessageFrame(data=data)).SerializeToString()
    with pytest.raises(SerializationError, match="message is not valid JSON: "):
        ser.deserialize(wire)


def test_absurdly_nested_json_is_refused_not_crashing(ser: ProtobufFrameSerializer) -> None:
    data = "[" * 200_000 + "]" * 200_000
    wire = pb.Frame(message=pb.MessageFrame(data=data)).SerializeToString()
    with pytest.raises(SerializationError, match="message is not valid JSON"):
        ser.deserialize(wire)


def audio_wire(audio: bytes, sample_rate: int = 16000, num_channels: int = 1) -> bytes:
    msg = pb.AudioRawFrame(audio=audio, sample_rate=sample_rate, num_channels=num_channels)
    wire: bytes = pb.Frame(audio=msg).SerializeToString()
    return wire


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (audio_wire(pcm(511)), "511 bytes, not a whole number of 16-bit samples for 1 channel"),
        (audio_wire(pcm(6), num_channels=2), "6 bytes, not a whole number .* for 2 channel"),
        (audio_wire(b""), "no audio bytes"),
        (audio_wire(pcm(512), sample_rate=0), "sample_rate 0"),
        (audio_wire(pcm(512), num_channels=0), "num_channels 0"),
    ],
    ids=["odd", "stereo-partial", "empty", "rate-0", "channels-0"],
)
def test_bad_mic_audio(ser: ProtobufFrameSerializer, wire: bytes, reason: str) -> None:
    with pytest.raises(SerializationError, match=reason):
        ser.deserialize(wire)


# --- refusals: server -> client -----------------------------------------------------------------


def test_odd_length_bot_audio(ser: ProtobufFrameSerializer) -> None:
    with pytest.raises(SerializationError, match="3 bytes, not a whole number of 16-bit samples"):
        ser.serialize(f.TTSAudioRawFrame(b"\x00\x01\x02", 24000, 1))


def test_out_of_range_audio_fields(ser: ProtobufFrameSerializer) -> None:
    with pytest.raises(SerializationError, match=r"cannot serialize OutputAudioRawFrame#\d+"):
        ser.serialize(f.OutputAudioRawFrame(pcm(4), -1, 1))


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"x": object()}, "not JSON serializable"),
        ({"x": float("nan")}, "Out of range float"),
        ("\ud800", "surrogates not allowed"),
    ],
    ids=["object", "nan", "lone-surrogate"],
)
def test_messages_that_cannot_be_sent(ser: ProtobufFrameSerializer, message: object, reason: str) -> None:
    with pytest.raises(SerializationError, match=reason):
        ser.serialize(f.OutputTransportMessageFrame(message=message))


def test_circular_message(ser: ProtobufFrameSerializer) -> None:
    message: dict[str, object] = {}
    message["self"] = message
    with pytest.raises(SerializationError, match="Circular reference"):
        ser.serialize(f.OutputTransportMessageUrgentFrame(message=message))


# --- a long call does not grow memory -----------------------------------------------------------


def test_memory_stays_flat_over_many_chunks() -> None:
    """Reusing one protobuf message would keep every chunk in its arena (about 160 MiB here)."""
    script = textwrap.dedent(
        """
        import resource
        from voxloop import frames as f
        from voxloop.transports.serializers import ProtobufFrameSerializer
        ser = ProtobufFrameSerializer()
        chunk = bytes(4096)
        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        for _ in range(200):
            ser.deserialize(ser.serialize(f.OutputAudioRawFrame(chunk, 24000, 1)))
        before = peak()
        for _ in range(20_000):
            ser.deserialize(ser.serialize(f.OutputAudioRawFrame(chunk, 24000, 1)))
        print(peak() - before)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    grown_mib = int(out.stdout.strip())
    assert grown_mib < 32, f"peak memory grew by {grown_mib} MiB over 20,000 chunks"
