"""Exotel: the Voicebot stream's events, 320-byte blocks, the dynamic URL and its Basic auth, calls."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import numpy as np
import pytest

from helpers.phone_bots import SpeakerBot
from helpers.telephony import EchoOrHangUp, phone_server
from voxloop.transports import telephony as tel
from voxloop.transports.serializers import SerializationError
from voxloop.transports.telephony.exotel import ExotelProvider, ExotelSerializer, exotel_stream_answer

pytestmark = pytest.mark.timeout(60)

STREAM = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
# The start as Exotel's AgentStream "WebSocket protocol" page gives it.
START = {
    "event": "start",
    "start": {
        "stream_sid": STREAM,
        "call_sid": "CA77",
        "account_sid": "exotel1",
        "from": "+919876543210",
        "to": "+918047491899",
        "custom_parameters": {"lang": "hi"},
        "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"},
    },
    "sequence_number": "1",
    "stream_sid": STREAM,
}


def event(name: str, **body: object) -> str:
    return json.dumps({"event": name, "sequence_number": "2", "stream_sid": STREAM, **body})


def test_the_documented_events_decode() -> None:
    serializer = ExotelSerializer()
    assert serializer.parse(json.dumps({"event": "connected"})) is None
    assert serializer.parse(json.dumps(START)) == tel.CallStarted(
        call_id="CA77",
        stream_id=STREAM,
        custom_parameters={"lang": "hi"},
        from_number="+919876543210",
        to_number="+918047491899",
    )
    pcm = np.arange(-400, 400, dtype="<i2").tobytes()  # 100 ms of 8 kHz 16-bit PCM, sent as it is
    media = {"chunk": "2", "timestamp": "200", "payload": base64.b64encode(pcm).decode()}
    assert serializer.parse(event("media", media=media)) == tel.CallAudio(pcm)
    assert serializer.parse(event("dtmf", dtmf={"digit": "5", "duration": "100"})) == tel.CallDtmf("5")
    assert serializer.parse(event("mark", mark={"name": "7"})) == tel.MarkPlayed("7")
    stop = {"call_sid": "CA77", "account_sid": "exotel1", "reason": "callended"}
    assert serializer.parse(event("stop", stop=stop)) == tel.CallStopped()
    # Exotel's Agent-Stream notes spell some fields in camelCase on other paths: read as well.
    camel = {"event": "start", "streamSid": "S2", "start": {"streamSid": "S2", "callSid": "C2"}}
    assert serializer.parse(json.dumps(camel)) == tel.CallStarted(call_id="C2", stream_id="S2")


def test_bad_input_is_refused_with_what_was_wrong() -> None:
    serializer = ExotelSerializer()
    odd = {"payload": base64.b64encode(bytes(321)).decode()}
    for bad, error in [
        ("not json", "not JSON"),
        (event("surprise"), "unknown Exotel event 'surprise'"),
        (event("media", media=odd), "not whole 2-byte samples"),
        (event("media", media={"payload": "%%%"}), "not base64"),
        (event("media"), "without a 'media' object"),
        (event("mark", mark={}), "'name'"),
        (json.dumps({**START, "start": {**START["start"], "call_sid": ""}}), "call_sid"),
        (
            json.dumps({**START, "start": {**START["start"], "media_format": {"sample_rate": "16000"}}}),
            "16000 Hz",
        ),
        (
            json.dumps({**START, "start": {**START["start"], "media_format": {"encoding": "audio/x-mulaw"}}}),
            "unsupported Exotel media encoding",
        ),
    ]:
        with pytest.raises(SerializationError, match=error):
            serializer.parse(bad)


def test_bot_audio_leaves_in_whole_320_byte_blocks_and_a_clear_drops_what_was_held() -> None:
    serializer = ExotelSerializer()
    serializer.parse(json.dumps(START))
    assert serializer.chunk_ms == 100  # Exotel's minimum chunk: 100 ms
    assert serializer.audio(bytes(300)) == []  # short of a block: held
    first, second = (
        json.loads(m) for m in serializer.audio(b"\x01\x00" * 1600) + serializer.audio(bytes(60))
    )
    assert first["event"] == "media" and first["stream_sid"] == STREAM
    assert len(base64.b64decode(first["media"]["payload"])) == 3200  # 300 + 3200 bytes: 10 blocks, 300 held
    assert (first["media"]["chunk"], first["media"]["timestamp"]) == ("1", "0")
    assert len(base64.b64decode(second["media"]["payload"])) == 320  # 300 + 60: one block, 40 held
    assert (second["media"]["chunk"], second["media"]["timestamp"]) == ("2", "200")
    assert json.loads(serializer.mark("4")) == {"event": "mark", "stream_sid": STREAM, "mark": {"name": "4"}}
    assert serializer.audio(bytes(100)) == []  # 140 held
    assert json.loads(serializer.clear()) == {"event": "clear", "stream_sid": STREAM}
    assert serializer.audio(bytes(220)) == []  # 220, not 360: what was held went with the clear


def test_the_dynamic_url_answers_the_stream_url_with_only_the_token() -> None:
    assert json.loads(exotel_stream_answer("wss://example.org/exotel/ws", {"voxloop_token": "t"})) == {
        "url": "wss://example.org/exotel/ws?voxloop_token=t"
    }
    markup = ExotelProvider("k", "t").markup(
        "wss://example.org/exotel/ws", {"voxloop_token": "abc", "voxloop_from": "+91", "voxloop_to": "+92"}
    )
    assert markup.media_type == "application/json"
    assert json.loads(markup.body) == {"url": "wss://example.org/exotel/ws?voxloop_token=abc"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_the_webhook_needs_the_accounts_basic_credentials() -> None:
    provider = ExotelProvider("key", "token")
    url = "https://example.org/exotel?CallSid=c1&CallFrom=%2B9198&CallTo=%2B9180"
    call = provider.verify(url, basic("key", "token"), b"")
    assert (call.call_id, call.from_number, call.to_number) == ("c1", "+9198", "+9180")
    with pytest.raises(tel.WebhookRefused, match="not this account's"):
        provider.verify(url, basic("key", "guess"), b"")
    with pytest.raises(tel.WebhookRefused, match="no Authorization: Basic"):
        provider.verify(url, {}, b"")
    with pytest.raises(tel.WebhookRefused, match="not base64"):
        provider.verify(url, {"authorization": "Basic %%%"}, b"")
    with pytest.raises(tel.WebhookRefused, match="not set"):
        ExotelProvider(verify=True).verify(url, basic("key", "token"), b"")
    posted = provider.verify("https://example.org/exotel", basic("key", "token"), b"CallSid=c2&From=%2B1")
    assert (posted.call_id, posted.from_number) == ("c2", "+1")
    assert ExotelProvider(verify=False).verify(url, {}, b"").call_id == "c1"


async def test_an_anonymous_webhook_or_stream_is_refused_and_no_call_starts() -> None:
    bot = EchoOrHangUp()
    async with phone_server("exotel", bot) as (webhook, _app, cloud):
        wrong = await cloud.call(webhook, credentials=(cloud.api_key, "guessed")).post_webhook()
        assert wrong.status_code == 403 and "not this account's" in wrong.text
        async with httpx.AsyncClient() as http:
            anonymous = await http.get(webhook, params={"CallSid": "c1"})
        assert anonymous.status_code == 403 and "no Authorization: Basic" in anonymous.text
        async with cloud.call(webhook) as call:  # a media socket without the webhook's token
            await call.open_stream(webhook.replace("http://", "ws://") + "/ws", {"voxloop_token": "guessed"})
            await asyncio.wait_for(call.closed.wait(), 10)
    assert bot.sessions == []


async def test_an_interruption_sends_clear_and_only_the_words_whose_marks_came_back_pass() -> None:
    bot = SpeakerBot()
    recorder = bot.recorder
    async with phone_server("exotel", bot) as (webhook, _app, cloud), cloud.call(webhook) as call:
        await call.dial()
        assert call.stream_url is not None and "/exotel/ws?voxloop_token=" in call.stream_url
        call.line.stalled = True  # nothing plays: no mark comes back
        await call.press("1")
        await call.line.wait_until(lambda: call.line.sent_bytes >= 3200)  # "two" is held behind sent audio
        assert recorder.words == ["one"]
        await call.press("9")
        await call.line.wait_until(lambda: call.line.clears >= 1)
        call.line.stalled = False
        await call.wait_for_quiet_line()
    assert call.line.cleared_marks
    assert recorder.words == ["one"]  # the marks of cleared audio do not count as played
    assert call.protocol_errors == []
