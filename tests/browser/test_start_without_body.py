"""The published SmallWebRTC client started with ``startBotAndConnect({endpoint: "/start"})`` and
no ``requestData`` (so ``/start`` gets no body), in headless Chromium, against a WebRTC-only and
an ``all`` server: ``/start`` picks WebRTC for it, and the client reaches bot-ready."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from helpers.bots import SessionRecordingBot
from helpers.browser import run_driver, write_fake_mic
from helpers.server import running_server
from helpers.speech import silence
from voxloop.server import ServerConfig

START_BARE = Path(__file__).with_name("start_bare.mjs")


@pytest.mark.parametrize("transports", [("webrtc",), ("websocket", "webrtc")], ids=["webrtc", "all"])
async def test_the_smallwebrtc_client_starts_with_an_empty_body(
    browser_tools: None, loopback_ice: None, tmp_path: Path, transports: tuple[str, ...]
) -> None:
    write_fake_mic(tmp_path / "mic.wav", silence(1.0))
    bot = SessionRecordingBot()
    async with running_server(ServerConfig(bot=bot, transports=transports)) as (base, app):
        args = ["--url", f"{base}/", "--wav", str(tmp_path / "mic.wav")]
        report = await run_driver(START_BARE, [*args, "--profile", str(tmp_path / "profile")], timeout=60)
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
        await asyncio.wait_for(app.state.webrtc.empty.wait(), 10)

    assert report["startRequests"] == [{"method": "POST", "body": None}]  # no body at all
    started = report["started"]
    assert set(started) == {"sessionId", "iceConfig"} and started["iceConfig"] == {"iceServers": []}
    assert report["botReady"]["version"] == "2.1.0" and report["state"] == "ready"
    assert report["requestReply"] == {"echo": {"n": 7}}
    # The client offered to /sessions/{sessionId}/api/offer: the bot's session is that one.
    assert [(s.session_id, s.transport) for s in bot.sessions] == [(started["sessionId"], "webrtc")]
    assert report["pageErrors"] == []
