"""`voxloop run --transport <provider>` as a user starts it: a real process answering a real call."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from helpers.paths import AUDIO
from voxloop.testing import load_wav
from voxloop.testing.telephony import ExotelCloud, TwilioCloud

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def voxloop_run(transports: list[str], env: dict[str, str], banner: bytes) -> AsyncIterator[str]:
    """``voxloop run --bot echo`` serving ``transports``; yields its public URL (what a tunnel would
    forward). Its banner must name ``banner``; it must exit cleanly on SIGINT."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    chosen = [arg for name in transports for arg in ("--transport", name)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxloop.cli", "run", "--port", str(port), "--bot", "echo",
        *chosen, "--public-url", public,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **env},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first_line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert banner in first_line, first_line
        await asyncio.wait_for(process.stdout.readline(), 30)  # listening
        yield public
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, (await process.stderr.read()).decode() if process.stderr else ""


async def test_run_serves_twilio_and_the_browser_transport_side_by_side() -> None:
    cloud = TwilioCloud("a-test-auth-token")
    env = {"TWILIO_ACCOUNT_SID": cloud.account_sid, "TWILIO_AUTH_TOKEN": cloud.auth_token}
    async with (
        voxloop_run(["websocket", "twilio"], env, b"(websocket, twilio;") as public,
        cloud.call(f"{public}/twilio") as call,  # the signature is over the public URL
    ):
        await call.dial()
        assert call.stream is not None and call.stream.url == public.replace("http", "ws") + "/twilio/ws"
        await call.send_audio(load_wav(AUDIO / "utt02_timer.wav")[0][:32000], 16000)
        await call.wait_for_played(0.5)
        forged = await cloud.call(f"{public}/twilio", signature="Zm9yZ2Vk").post_webhook()
        assert forged.status_code == 403
        await call.hang_up()


async def test_run_serves_exotel_with_its_credentials_from_the_environment() -> None:
    cloud = ExotelCloud()
    env = {"EXOTEL_API_KEY": cloud.api_key, "EXOTEL_API_TOKEN": cloud.api_token}
    async with (
        voxloop_run(["exotel"], env, b"(exotel;") as public,
        cloud.call(f"{public}/exotel") as call,
    ):
        await call.dial()
        assert call.stream_url is not None
        assert call.stream_url.startswith(public.replace("http", "ws") + "/exotel/ws?voxloop_token=")
        await call.send_audio(load_wav(AUDIO / "utt02_timer.wav")[0][:32000], 16000)
        await call.wait_for_played(0.5)
        forged = await ExotelCloud().call(f"{public}/exotel").post_webhook()
        assert forged.status_code == 403
        await call.hang_up()
