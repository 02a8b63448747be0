"""The Twilio serializer and markup, checked against Twilio's documented shapes and its SDK."""

from __future__ import annotations

import asyncio
import base64
import json
import xml.etree.ElementTree as ET

import pytest

from voxloop.audio.g711 import pcm16_to_ulaw
from voxloop.transports.serializers import SerializationError
from voxloop.transports.telephony import (
    CallAudio,
    CallDtmf,
    CallStarted,
    CallStopped,
    MarkPlayed,
    TelephonyTransport,
    WebhookRefused,
)
from voxloop.transports.telephony.twilio import TwilioProvider, TwilioSerializer, twiml_connect_stream

STREAM = "MZ18ad3ab5a668481ce02b83e7395059f0"
START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "AC123",
        "streamSid": STREAM,
        "callSid": "CA123",
        "tracks": ["inbound"],
        "customParameters": {"FirstName": "Jane", "voxloop_from": "+15550001"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
    "streamSid": STREAM,
}


def started() -> TwilioSerializer:
    serializer = TwilioSerializer()
    serializer.parse(json.dumps(START))
    return serializer


def test_start_gives_the_call_stream_and_custom_parameters() -> None:
    serializer = TwilioSerializer()
    assert (
        serializer.parse(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})) is None
    )
    event = serializer.parse(json.dumps(START))
    assert event == CallStarted(
        call_id="CA123",
        stream_id=STREAM,
        custom_parameters={"FirstName": "Jane", "voxloop_from": "+15550001"},
    )


def test_media_dtmf_mark_and_stop_events_decode() -> None:
    serializer = started()
    pcm = b"\x00\x08" * 160
    payload = base64.b64encode(pcm16_to_ulaw(pcm)).decode()
    media = {"event": "media", "sequenceNumber": "3", "streamSid": STREAM}
    media["media"] = {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": payload}
    audio = serializer.parse(json.dumps(media))
    assert isinstance(audio, CallAudio) and len(audio.pcm) == 320
    dtmf = {
        "event": "dtmf",
        "streamSid": STREAM,
        "sequenceNumber": "5",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    }
    assert serializer.parse(json.dumps(dtmf)) == CallDtmf("1")
    mark = {"event": "mark", "sequenceNumber": "4", "streamSid": STREAM, "mark": {"name": "my label"}}
    assert serializer.parse(json.dumps(mark)) == MarkPlayed("my label")
    stop = {
        "event": "stop",
        "sequenceNumber": "5",
        "streamSid": STREAM,
        "stop": {"accountSid": "AC1", "callSid": "CA1"},
    }
    assert serializer.parse(json.dumps(stop)) == CallStopped()


def test_the_bots_media_mark_and_clear_carry_the_stream_sid() -> None:
    serializer = started()
    media = json.loads(*serializer.audio(b"\x00\x00" * 160))
    assert media == {
        "event": "media",
        "streamSid": STREAM,
        "media": {"payload": base64.b64encode(b"\xff" * 160).decode()},
    }
    assert json.loads(serializer.mark("7")) == {"event": "mark", "streamSid": STREAM, "mark": {"name": "7"}}
    assert json.loads(serializer.clear()) == {"event": "clear", "streamSid": STREAM}


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not an object"),
        ('{"event": "hello"}', "unknown Twilio event 'hello'"),
        ('{"event": "media"}', "without a 'media' object"),
        ('{"event": "media", "media": {"payload": "***"}}', "not base64"),
        ('{"event": "media", "media": {"payload": 5}}', "not a base64 string"),
        ('{"event": "mark", "mark": {}}', "'name'"),
        ('{"event": "start", "start": {"streamSid": "MZ1"}}', "'callSid'"),
        ("{" + '"pad": "' + "x" * 300_000 + '"}', "over"),
    ],
)
def test_bad_messages_raise_a_serialization_error_that_says_why(message: str, error: str) -> None:
    with pytest.raises(SerializationError, match=error):
        started().parse(message)


def test_an_outbound_track_is_not_the_caller() -> None:
    media = {"event": "media", "media": {"track": "outbound", "payload": base64.b64encode(b"\xff").decode()}}
    assert started().parse(json.dumps(media)) is None


def test_the_twiml_is_what_the_twilio_sdk_builds() -> None:
    from twilio.twiml.voice_response import Connect, VoiceResponse

    url, parameters = "wss://example.ngrok.app/twilio/ws", {"voxloop_token": "t0k", "voxloop_from": "+1555"}
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    assert ET.canonicalize(twiml_connect_stream(url, parameters)) == ET.canonicalize(str(response))


def test_the_webhook_signature_is_checked_with_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    from twilio.request_validator import RequestValidator

    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)  # the missing-token case below

    token, url = "secret-token", "https://example.ngrok.app/twilio"
    params = {"CallSid": "CA1", "From": "+15550001", "To": "+15550002"}
    body = "&".join(f"{k}={v}".replace("+", "%2B") for k, v in params.items()).encode()
    good = RequestValidator(token).compute_signature(url, params)
    provider = TwilioProvider("AC1", token)
    call = provider.verify(url, {"x-twilio-signature": good}, body)
    assert (call.call_id, call.from_number, call.to_number) == ("CA1", "+15550001", "+15550002")
    with pytest.raises(WebhookRefused, match="no X-Twilio-Signature"):
        provider.verify(url, {}, body)
    with pytest.raises(WebhookRefused, match="does not match"):
        provider.verify(url, {"x-twilio-signature": good}, body.replace(b"CA1", b"CA2"))
    with pytest.raises(WebhookRefused, match="does not match"):
        provider.verify("https://elsewhere.example/twilio", {"x-twilio-signature": good}, body)
    with pytest.raises(WebhookRefused, match="TWILIO_AUTH_TOKEN"):
        TwilioProvider("AC1", None).verify(url, {"x-twilio-signature": good}, body)
    assert TwilioProvider(verify=False).verify(url, {}, body).call_id == "CA1"  # checking turned off


async def test_cancelling_a_wait_for_marks_cancels_it_even_as_the_marks_are_released() -> None:
    # At a hang-up the output releases the held marks and at once cancels its speaking watcher, which
    # may be waiting for those marks: asyncio.wait_for (Python 3.11) swallowed that cancel, the watcher
    # never ended, and neither did the session (the Telnyx and Plivo hang-up tests hung).
    output = TelephonyTransport(None, TwilioSerializer()).output()  # type: ignore[arg-type]
    output._all_heard.clear()  # a mark is out
    waiter = asyncio.create_task(output.wait_heard())
    await asyncio.sleep(0)  # one step: it is now waiting for the event
    output._all_heard.set()
    waiter.cancel()
    await asyncio.wait({waiter})
    assert waiter.cancelled()
