"""What every provider's calls must do, end to end through its emulator: the same test bodies for
each provider, with what is its own (its ids, its REST hang-up, how it forges) in the tables below."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import pytest

from helpers.paths import AUDIO
from helpers.telephony import PROVIDERS, EchoOrHangUp, cloud_and_provider, phone_server
from voxloop.testing import load_wav
from voxloop.testing.telephony import EmulatedCall, TwilioCloud

pytestmark = pytest.mark.timeout(60)

#: (provider, the emulator's options) for each call that is tried: Telnyx in both of its codecs.
CALLS = [
    ("twilio", {}),
    ("telnyx", {"encoding": "PCMU"}),
    ("telnyx", {"encoding": "PCMA"}),
    ("plivo", {}),
    ("vonage", {}),
    ("exotel", {}),
]


def hang_up_request(
    provider: str, cloud: Any, call: EmulatedCall
) -> tuple[str, str, dict[str, Any] | None] | None:
    """The REST request that ends ``call``: (method, how its URL ends, its body; None: not checked).
    None for Exotel: no API ends a Voicebot call; the server closing the stream ends it."""
    if provider == "exotel":
        return None
    if provider == "twilio":
        return "POST", f"/Accounts/{cloud.account_sid}/Calls/{call.call_id}.json", {"Status": "completed"}
    if provider == "telnyx":
        return "POST", f"/v2/calls/{call.call_id}/actions/hangup", None
    if provider == "plivo":
        return "DELETE", f"https://api.plivo.com/v1/Account/{cloud.auth_id}/Call/{call.call_id}/", {}
    return "PUT", f"https://api.nexmo.com/v1/calls/{call.call_id}", {"action": "hangup"}


#: The emulator's options that forge a provider's webhook signature.
FORGED: dict[str, dict[str, str]] = {
    "twilio": {"signature": "bm90IGEgc2lnbmF0dXJl"},
    "telnyx": {"signature": base64.b64encode(bytes(64)).decode()},
    "plivo": {"signature": "Zm9yZ2Vk"},
    "vonage": {"token": "not.a.jwt"},
    "exotel": {"credentials": ("an-api-key", "not-its-token")},
}


def another_account(provider: str) -> Any:
    if provider == "twilio":
        return TwilioCloud("another-accounts-token")
    return cloud_and_provider(provider)[0]


@pytest.mark.parametrize(("provider", "options"), CALLS)
async def test_an_echo_call_plays_back_and_the_bot_hangs_up_through_the_providers_rest_api(
    provider: str, options: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    pcm, rate, _ = load_wav(AUDIO / "utt02_timer.wav")
    bot = EchoOrHangUp()
    async with phone_server(provider, bot) as (webhook, app, cloud), cloud.call(webhook, **options) as call:
        await call.dial()
        await call.send_audio(pcm[: rate * 2 * 2], rate)  # two seconds of speech
        await call.wait_for_played(1.0)
        with caplog.at_level(logging.INFO, logger="voxloop.telephony"):
            await call.press("#")
            await asyncio.wait_for(call.hung_up_by_server.wait(), 10)
            await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
    # The reply's last marks came back before the hang-up: none timed out and counted as unheard.
    assert "not acknowledged" not in caplog.text
    # Vonage's among others: every bot frame was exactly 20 ms; Exotel's: whole 320-byte blocks
    assert call.protocol_errors == []
    assert call.line.played_marks, "marks were sent and came back once played"
    info = bot.sessions[0]
    assert info.transport == provider and info.call is not None
    assert (info.call.call_id, info.call.stream_id) == (call.call_id, call.stream_id)
    assert (info.call.from_number, info.call.to_number) == (call.from_number, call.to_number)
    assert info.call.custom_parameters == {}  # the server's own parameters are taken out
    expected = hang_up_request(provider, cloud, call)
    if expected is None:
        assert cloud.rest_requests == []
        return
    method, url, body = cloud.rest_requests[0]
    expected_method, expected_url_end, expected_body = expected
    assert method == expected_method and url.endswith(expected_url_end)
    if expected_url_end.startswith("https://"):
        assert url == expected_url_end  # the whole URL, where the table gives it
    if expected_body is not None:
        assert body == expected_body


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_caller_hanging_up_ends_the_session_quietly_without_a_rest_call(
    provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    bot = EchoOrHangUp()
    async with phone_server(provider, bot) as (webhook, app, cloud), cloud.call(webhook) as call:
        await call.dial()
        await call.send_silence(0.2)
        with caplog.at_level(logging.INFO, logger="voxloop.telephony"):
            await call.hang_up()  # a stop where the provider sends one, then the socket closes
            await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
            await asyncio.wait_for(bot.tasks[0].wait_until_finished(), 10)
    ends_with_stop = provider in ("twilio", "telnyx", "exotel")
    expected = "the provider ended the stream" if ends_with_stop else "the provider closed the stream"
    assert expected in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert cloud.rest_requests == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_forged_webhook_or_another_accounts_is_refused(provider: str) -> None:
    bot = EchoOrHangUp()
    async with phone_server(provider, bot) as (webhook, _app, cloud):
        forged = await cloud.call(webhook, **FORGED[provider]).post_webhook()
        assert forged.status_code == 403
        assert (await another_account(provider).call(webhook).post_webhook()).status_code == 403
    assert bot.sessions == []


#: Per provider: malformed, unknown and oversized messages one call is sent, and what the log
#: must then say about them.
BAD_INPUT: dict[str, tuple[list[Any], list[str]]] = {
    "twilio": (
        [
            "not json",
            "[]",
            {"event": "surprise"},
            {"event": "media", "media": {"payload": "%%%"}},
            {"event": "media", "media": {"payload": base64.b64encode(bytes(300_000)).decode()}},
            {"event": "dtmf", "dtmf": {"digit": "X"}},
            {"event": "mark", "mark": {"name": "never-sent"}},
        ],
        ["not JSON", "unknown Twilio event 'surprise'", "not base64", "over 262144", "DTMF digit 'X'"],
    ),
    "exotel": (
        [
            "not json",
            {"event": "surprise"},
            {"event": "media", "media": {"payload": base64.b64encode(bytes(321)).decode()}},
            {"event": "dtmf", "dtmf": {"digit": "X", "duration": "100"}},
            {"event": "mark", "mark": {"name": "never-sent"}},
        ],
        ["not JSON", "unknown Exotel event 'surprise'", "not whole 2-byte samples", "DTMF digit 'X'"],
    ),
}


@pytest.mark.parametrize("provider", sorted(BAD_INPUT))
async def test_bad_input_is_logged_and_the_call_and_other_calls_go_on(
    provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    junk, logged = BAD_INPUT[provider]
    pcm = load_wav(AUDIO / "utt02_timer.wav")[0][: 16000 * 2]
    async with (
        phone_server(provider, EchoOrHangUp()) as (webhook, app, cloud),
        cloud.call(webhook) as bad,
        cloud.call(webhook) as good,
        cloud.call(webhook) as dropped,
    ):
        for call in (bad, good, dropped):
            await call.dial()
        for message in junk:
            await bad.send(message)
        await dropped.close()  # the provider's socket drops mid-call, no stop
        await asyncio.gather(bad.send_audio(pcm, 16000), good.send_audio(pcm, 16000))
        await asyncio.gather(bad.wait_for_played(0.5), good.wait_for_played(0.5))
        assert len(app.state.sessions) == 2  # the dropped call's session ended, the others run
        await bad.hang_up()
        await good.hang_up()
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
    for fragment in [*logged, "the media socket dropped without a stop"]:
        assert fragment in caplog.text
