"""Vonage: raw 16 kHz L16 frames, notify as marks, the NCCO, JWT-signed webhooks, calls end to end."""

from __future__ import annotations

import hashlib
import json

import jwt
import pytest

from voxloop.testing.telephony import VonageCloud
from voxloop.transports.serializers import SerializationError
from voxloop.transports.telephony import CallAudio, CallDtmf, CallStarted, MarkPlayed, WebhookRefused
from voxloop.transports.telephony.vonage import VonageProvider, VonageSerializer, vonage_ncco

pytestmark = pytest.mark.timeout(60)

CONNECTED = {
    "event": "websocket:connected",
    "content-type": "audio/l16;rate=16000",
    "voxloop_call": "63f61863-4a51-4f6b-86e1-46edebcf9356",
    "voxloop_from": "447700900000",
    "app": "demo",
}


def test_the_documented_messages_decode() -> None:
    serializer = VonageSerializer()
    assert serializer.parse(json.dumps(CONNECTED)) == CallStarted(
        call_id=CONNECTED["voxloop_call"],
        stream_id=CONNECTED["voxloop_call"],
        custom_parameters={"app": "demo"},
        from_number="447700900000",
    )
    assert serializer.parse(bytes(640)) == CallAudio(bytes(640))
    assert serializer.parse(
        json.dumps({"event": "websocket:dtmf", "digit": "9", "duration": 250})
    ) == CallDtmf("9")
    notify = {"event": "websocket:notify", "payload": {"name": "12"}}
    assert serializer.parse(json.dumps(notify)) == MarkPlayed("12")
    assert serializer.parse(json.dumps({"event": "websocket:cleared"})) is None
    for bad, error in [
        (b"\x00" * 641, "not whole 16-bit samples"),
        (json.dumps({"event": "websocket:surprise"}), "unknown Vonage event"),
        (json.dumps({**CONNECTED, "content-type": "audio/l16;rate=8000"}), "unsupported Vonage content-type"),
        (
            json.dumps({"event": "websocket:connected", "content-type": "audio/l16;rate=16000"}),
            "voxloop_call",
        ),
    ]:
        with pytest.raises(SerializationError, match=error):
            serializer.parse(bad)


def test_bot_audio_leaves_in_whole_20_ms_frames_and_a_clear_drops_the_remainder() -> None:
    serializer = VonageSerializer()
    assert serializer.audio(bytes(500)) == []  # short of a frame: held
    frames = serializer.audio(b"\x01\x00" * 500)  # 500 + 1000 bytes: two frames, 220 held
    assert [len(f) for f in frames] == [640, 640] and frames[0] == bytes(500) + b"\x01\x00" * 70
    assert json.loads(serializer.mark("3")) == {"action": "notify", "payload": {"name": "3"}}
    assert json.loads(serializer.clear()) == {"action": "clear"}
    assert serializer.audio(bytes(420)) == []  # the 220 held bytes went with the clear


def test_the_ncco_connects_a_16_khz_websocket_with_the_parameters_as_headers() -> None:
    ncco = json.loads(vonage_ncco("wss://example.org/vonage/ws", {"voxloop_token": "t"}))
    assert ncco == [
        {
            "action": "connect",
            "endpoint": [
                {
                    "type": "websocket",
                    "uri": "wss://example.org/vonage/ws",
                    "content-type": "audio/l16;rate=16000",
                    "headers": {"voxloop_token": "t"},
                }
            ],
        }
    ]


def test_the_webhook_jwt_is_checked_with_the_sdk_and_must_match_the_body() -> None:
    cloud = VonageCloud()
    provider = VonageProvider(cloud.signature_secret)
    body = json.dumps({"uuid": "u-1", "from": "447700900000", "to": "447700900001"}).encode()
    call = provider.verify("", {"authorization": f"Bearer {cloud.sign(body)}"}, body)
    assert (call.call_id, call.from_number, call.to_number) == ("u-1", "447700900000", "447700900001")
    with pytest.raises(WebhookRefused, match="payload_hash"):
        provider.verify("", {"authorization": f"Bearer {cloud.sign(body)}"}, body.replace(b"u-1", b"u-2"))
    with pytest.raises(WebhookRefused, match="signature secret"):
        provider.verify("", {"authorization": f"Bearer {VonageCloud().sign(body)}"}, body)
    claims = {"payload_hash": hashlib.sha256(body).hexdigest()}
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(WebhookRefused, match="does not verify"):
        provider.verify("", {"authorization": f"Bearer {unsigned}"}, body)
    with pytest.raises(WebhookRefused, match="no Authorization"):
        provider.verify("", {}, body)
    assert VonageProvider(verify=False).verify("", {}, body).call_id == "u-1"
