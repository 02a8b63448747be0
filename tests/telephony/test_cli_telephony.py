"""`voxloop run --transport twilio` as a user starts it: a real process answering a signed call."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import pytest

from helpers.paths import AUDIO
from voxloop.testing import load_wav
from voxloop.testing.telephony import TwilioCloud

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_run_serves_twilio_and_the_browser_transport_side_by_side() -> None:
    port = free_port()
    cloud = TwilioCloud("a-test-auth-token")
    public = f"http://127.0.0.1:{port}"  # what a tunnel would forward; the signature is over it
    env = {**os.environ, "TWILIO_ACCOUNT_SID": cloud.account_sid, "TWILIO_AUTH_TOKEN": cloud.auth_token}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxloop.cli", "run", "--port", str(port), "--bot", "echo",
        "--transport", "websocket", "--transport", "twilio", "--public-url", public,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b"(websocket, twilio;" in banner, banner
        await asyncio.wait_for(process.stdout.readline(), 30)  # listening
        async with cloud.call(f"{public}/twilio") as call:
            await call.dial()
            assert call.stream is not None and call.stream.url == f"ws://127.0.0.1:{port}/twilio/ws"
            await call.send_audio(load_wav(AUDIO / "utt02_timer.wav")[0][:32000], 16000)
            await call.wait_for_played(0.5)
            forged = await cloud.call(f"{public}/twilio", signature="Zm9yZ2Vk").post_webhook()
            assert forged.status_code == 403
            await call.hang_up()
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, (await process.stderr.read()).decode() if process.stderr else ""
