"""Plivo: its stream events and Stream XML (against the SDK's builder), V3 signatures, calls end to end."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

import pytest

from voxloop.testing.telephony import PlivoCloud
from voxloop.transports.serializers import SerializationError
from voxloop.transports.telephony import (
    CallAudio,
    CallDtmf,
    CallStarted,
    CallStopped,
    MarkPlayed,
    WebhookRefused,
)
from voxloop.transports.telephony.plivo import (
    PlivoProvider,
    PlivoSerializer,
    encode_extra_headers,
    plivo_stream_xml,
)

pytestmark = pytest.mark.timeout(60)

STREAM = "87654321-4321-4321-4321-cba987654321"
START = {
    "event": "start",
    "sequenceNumber": 1,
    "start": {
        "callId": "12345678-1234-1234-1234-123456789abc",
        "streamId": STREAM,
        "accountId": "MAXXXXXXXXXXXXXXXXXX",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
    },
    "extra_headers": "userId=12345;sessionId=abc-xyz",
}


def test_the_documented_events_decode() -> None:
    serializer = PlivoSerializer()
    assert serializer.parse(json.dumps(START)) == CallStarted(
        call_id="12345678-1234-1234-1234-123456789abc",
        stream_id=STREAM,
        custom_parameters={"userId": "12345", "sessionId": "abc-xyz"},
    )
    media = {"event": "media", "sequenceNumber": 2, "streamId": STREAM}
    media["media"] = {
        "track": "inbound",
        "timestamp": "20",
        "chunk": 1,
        "payload": base64.b64encode(b"\xff" * 160).decode(),
    }
    audio = serializer.parse(json.dumps(media))
    assert isinstance(audio, CallAudio) and audio.pcm == bytes(320)
    assert serializer.parse(
        json.dumps({"event": "dtmf", "streamId": STREAM, "dtmf": {"digit": "7"}})
    ) == CallDtmf("7")
    played = {"event": "playedStream", "streamId": STREAM, "name": "customer greeting audio"}
    assert serializer.parse(json.dumps(played)) == MarkPlayed("customer greeting audio")
    assert serializer.parse(json.dumps({"event": "clearedAudio", "streamId": STREAM})) is None
    # Plivo's stream SDK knows a stop (with a reason); the socket closing stays the usual end.
    stop = {"event": "stop", "streamId": STREAM, "reason": "hangup"}
    assert serializer.parse(json.dumps(stop)) == CallStopped()
    with pytest.raises(SerializationError, match="unknown Plivo event"):
        serializer.parse(json.dumps({"event": "connected"}))


def test_the_bots_messages_are_play_audio_checkpoint_and_clear_audio() -> None:
    serializer = PlivoSerializer()
    serializer.parse(json.dumps(START))
    sent = json.loads(*serializer.audio(bytes(320)))
    assert sent == {
        "event": "playAudio",
        "media": {
            "contentType": "audio/x-mulaw",
            "sampleRate": 8000,
            "payload": base64.b64encode(b"\xff" * 160).decode(),
        },
        "streamId": STREAM,
    }
    assert json.loads(serializer.mark("4")) == {"event": "checkpoint", "streamId": STREAM, "name": "4"}
    assert json.loads(serializer.clear()) == {"event": "clearAudio", "streamId": STREAM}


def test_the_servers_parameters_survive_extra_headers_letters_and_digits_only() -> None:
    parameters = {"voxloop_token": "a-b_c", "voxloop_from": "+14155550100"}
    encoded = encode_extra_headers(parameters)
    assert all(c.isalnum() or c in "=," for c in encoded)
    start = {**START, "extra_headers": encoded.replace(",", ";")}
    event = PlivoSerializer().parse(json.dumps(start))
    assert isinstance(event, CallStarted) and event.custom_parameters == parameters


def test_the_stream_xml_is_what_the_plivo_sdk_builds() -> None:
    from plivo import plivoxml

    url, parameters = "wss://example.org/plivo/ws", {"voxloop_token": "t0k"}
    response = plivoxml.ResponseElement()
    stream = plivoxml.StreamElement(
        url,
        bidirectional=True,
        keepCallAlive=True,
        contentType="audio/x-mulaw;rate=8000",
        extraHeaders=encode_extra_headers(parameters),
    )
    response.add(stream)
    assert ET.canonicalize(plivo_stream_xml(url, parameters)) == ET.canonicalize(response.to_string(False))


def test_the_v3_signature_is_checked_with_the_sdk() -> None:
    cloud = PlivoCloud()
    provider = PlivoProvider(cloud.auth_id, cloud.auth_token)
    url, params = "https://example.org/plivo", {"CallUUID": "u-1", "From": "14155550100", "To": "14155550199"}
    body = "&".join(f"{k}={v}" for k, v in params.items()).encode()
    headers = {
        "x-plivo-signature-v3": cloud.sign(url, params, "n0nce"),
        "x-plivo-signature-v3-nonce": "n0nce",
    }
    call = provider.verify(url, headers, body)
    assert (call.call_id, call.from_number, call.to_number) == ("u-1", "14155550100", "14155550199")
    with pytest.raises(WebhookRefused, match="does not match"):
        provider.verify(url, headers, body.replace(b"u-1", b"u-2"))
    with pytest.raises(WebhookRefused, match="does not match"):
        provider.verify(url, {**headers, "x-plivo-signature-v3-nonce": "other"}, body)
    with pytest.raises(WebhookRefused, match="no X-Plivo-Signature-V3"):
        provider.verify(url, {}, body)
    assert PlivoProvider(verify=False).verify(url, {}, body).call_id == "u-1"
