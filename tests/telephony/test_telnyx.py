"""Telnyx: its frames and TeXML, its Ed25519-signed webhook checked by its SDK, and calls end to end."""

from __future__ import annotations

import base64
import json
import time

import pytest

from voxloop.audio.g711 import pcm16_to_alaw
from voxloop.testing.telephony import TelnyxCloud
from voxloop.transports.serializers import SerializationError
from voxloop.transports.telephony import (
    CallAudio,
    CallDtmf,
    CallStarted,
    CallStopped,
    MarkPlayed,
    WebhookRefused,
)
from voxloop.transports.telephony.telnyx import TelnyxProvider, TelnyxSerializer, texml_connect_stream

pytestmark = pytest.mark.timeout(60)

STREAM = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
START = {
    "event": "start",
    "sequence_number": "1",
    "stream_id": STREAM,
    "start": {
        "user_id": "3E6F995F-85F7-4705-9741-53B116D28237",
        "call_control_id": "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ",
        "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
        "from": "+13122010094",
        "to": "+13122123456",
        "tags": ["TAG1", "TAG2"],
        "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
        "custom_parameters": {"customer_id": "customer_123"},
        "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
    },
}


def test_the_documented_frames_decode() -> None:
    serializer = TelnyxSerializer()
    assert serializer.parse(json.dumps({"event": "connected", "version": "1.0.0"})) is None
    assert serializer.parse(json.dumps(START)) == CallStarted(
        call_id=START["start"]["call_control_id"],  # type: ignore[index]
        stream_id=STREAM,
        custom_parameters={"customer_id": "customer_123"},
        from_number="+13122010094",
        to_number="+13122123456",
    )
    media = {"event": "media", "sequence_number": "4", "stream_id": STREAM}
    media["media"] = {
        "track": "inbound",
        "chunk": "2",
        "timestamp": "5",
        "payload": base64.b64encode(b"\xff" * 160).decode(),
    }
    audio = serializer.parse(json.dumps(media))
    assert isinstance(audio, CallAudio) and audio.pcm == bytes(320)  # mu-law 0xff is silence
    dtmf = {
        "event": "dtmf",
        "stream_id": STREAM,
        "occurred_at": "2024-01-01T00:00:00Z",
        "sequence_number": "5",
    }
    assert serializer.parse(json.dumps({**dtmf, "dtmf": {"digit": "#"}})) == CallDtmf("#")
    mark = {"event": "mark", "sequence_number": "6", "stream_id": STREAM, "mark": {"name": "3"}}
    assert serializer.parse(json.dumps(mark)) == MarkPlayed("3")
    stop = {"event": "stop", "sequence_number": "7", "stop": {"user_id": "u", "call_control_id": "c"}}
    assert serializer.parse(json.dumps({**stop, "stream_id": STREAM})) == CallStopped()
    with pytest.raises(SerializationError, match="stream error"):
        serializer.parse(
            json.dumps({"event": "error", "payload": {"code": 100002, "title": "Unknown error"}})
        )
    with pytest.raises(SerializationError, match="unknown Telnyx event"):
        serializer.parse(json.dumps({"event": "surprise"}))


def test_a_pcma_stream_is_decoded_and_answered_in_a_law() -> None:
    serializer = TelnyxSerializer()
    start = json.loads(json.dumps(START))
    start["start"]["media_format"]["encoding"] = "PCMA"
    serializer.parse(json.dumps(start))
    pcm = b"\x00\x10" * 160
    sent = json.loads(*serializer.audio(pcm))
    assert sent == {"event": "media", "media": {"payload": base64.b64encode(pcm16_to_alaw(pcm)).decode()}}
    assert json.loads(serializer.mark("1")) == {"event": "mark", "mark": {"name": "1"}}
    assert json.loads(serializer.clear()) == {"event": "clear"}
    start["start"]["media_format"]["encoding"] = "OPUS"
    with pytest.raises(SerializationError, match="unsupported Telnyx media encoding 'OPUS'"):
        TelnyxSerializer().parse(json.dumps(start))


def test_the_texml_connects_a_bidirectional_rtp_stream_with_parameters() -> None:
    texml = texml_connect_stream("wss://example.org/telnyx/ws", {"voxloop_token": "t"})
    assert texml == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://example.org/telnyx/ws"'
        ' bidirectionalMode="rtp" bidirectionalCodec="PCMU"><Parameter name="voxloop_token" value="t" />'
        "</Stream></Connect></Response>"
    )


def test_the_webhook_signature_is_checked_by_the_sdk() -> None:
    cloud = TelnyxCloud()
    provider = TelnyxProvider(cloud.public_key, cloud.api_key)
    body = "CallSid=v3%3Aabc&From=%2B13122010094&To=%2B13122123456"
    now = str(int(time.time()))
    headers = {"telnyx-timestamp": now, "telnyx-signature-ed25519": cloud.sign(now, body)}
    call = provider.verify("https://x/telnyx", headers, body.encode())
    assert (call.call_id, call.from_number, call.to_number) == ("v3:abc", "+13122010094", "+13122123456")
    with pytest.raises(WebhookRefused, match="does not verify"):
        provider.verify("https://x/telnyx", headers, body.replace("abc", "abd").encode())
    stale = str(int(time.time()) - 600)
    with pytest.raises(WebhookRefused, match="too old"):
        provider.verify(
            "",
            {"telnyx-timestamp": stale, "telnyx-signature-ed25519": cloud.sign(stale, body)},
            body.encode(),
        )
    with pytest.raises(WebhookRefused, match="does not verify"):  # another account's key
        TelnyxProvider(TelnyxCloud().public_key).verify("", headers, body.encode())
    with pytest.raises(WebhookRefused, match="no telnyx-signature"):
        provider.verify("", {}, body.encode())
    assert TelnyxProvider(verify=False).verify("", {}, body.encode()).call_id == "v3:abc"
