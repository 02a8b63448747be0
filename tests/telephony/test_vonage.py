"""Vonage: raw 16 kHz L16 frames, notify as marks, the NCCO, JWT-signed webhooks, calls end to end."""

from __future__ import annotations

import asyncio
import hashlib
import json

import jwt
import pytest

from helpers.paths import AUDIO
from helpers.telephony import phone_server
from voxloop.bots import SessionInfo
from voxloop.bots.echo import Echo
from voxloop.frames import EndTaskFrame, Frame, InputDTMFFrame, KeypadEntry
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.rtvi import RTVIProcessor
from voxloop.testing import load_wav
from voxloop.testing.telephony import VonageCloud
from voxloop.transports import Transport
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


class EchoOrHangUp:
    def __init__(self) -> None:
        self.sessions: list[SessionInfo] = []

    def __call__(self, transport: Transport, session: SessionInfo) -> PipelineTask:
        self.sessions.append(session)

        class HangUpOnPound(FrameProcessor):
            async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
                await self.push_frame(frame, direction)
                if isinstance(frame, InputDTMFFrame) and frame.button is KeypadEntry.POUND:
                    await self.push_frame(EndTaskFrame(), FrameDirection.UPSTREAM)

        processors = [RTVIProcessor(), transport.input(), HangUpOnPound(), Echo(), transport.output()]
        return PipelineTask(Pipeline(processors))


async def test_an_echo_call_plays_back_in_20_ms_frames_and_the_bot_hangs_up_through_the_voice_api() -> None:
    pcm, rate, _ = load_wav(AUDIO / "utt02_timer.wav")
    bot = EchoOrHangUp()
    async with phone_server("vonage", bot) as (webhook, app, cloud), cloud.call(webhook) as call:
        await call.dial()
        await call.send_audio(pcm[: rate * 2 * 2], rate)
        await call.wait_for_played(1.0)
        await call.press("#")
        await asyncio.wait_for(call.hung_up_by_server.wait(), 10)
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
    assert call.protocol_errors == []  # among others: every bot frame was exactly 20 ms
    assert call.line.played_marks
    info = bot.sessions[0]
    assert info.transport == "vonage" and info.call is not None
    assert (info.call.call_id, info.call.from_number, info.call.to_number) == (
        call.call_uuid,
        call.from_number,
        call.to_number,
    )
    assert info.call.custom_parameters == {}
    method, url, body = cloud.rest_requests[0]
    assert (method, url, body) == (
        "PUT",
        f"https://api.nexmo.com/v1/calls/{call.call_uuid}",
        {"action": "hangup"},
    )


async def test_a_forged_vonage_webhook_is_refused() -> None:
    bot = EchoOrHangUp()
    async with phone_server("vonage", bot) as (webhook, _app, cloud):
        assert (await cloud.call(webhook, token="not.a.jwt").post_webhook()).status_code == 403
        assert (await VonageCloud().call(webhook).post_webhook()).status_code == 403
    assert bot.sessions == []
