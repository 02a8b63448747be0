"""Audio in formats no microphone sends, over the real WebSocket wire, against the echo bot.

Five 2,000-byte frames declaring 1 Hz once took the server from 55 MB to 396 MB resident: each was
upsampled 16,000 times. They must be refused before any work, with one clear error, and the
session must go on.
"""

from __future__ import annotations

import base64
import re
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from helpers.server import running_server, start_websocket_session
from voxloop.bots import load_bot
from voxloop.server import ServerConfig
from voxloop.testing.rtvi_client import RTVIClient
from voxloop.transports.serializers import frames_pb2

# Far below the ~32 MB a single upsampled frame took (and the ~340 MB of five).
PEAK_BOUND_BYTES = 16 * 1024 * 1024
RSS_BOUND_KIB = 64 * 1024


def resident_kib() -> int:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert match is not None
    return int(match[1])


def audio_frame(audio: bytes, sample_rate: int, num_channels: int = 1) -> bytes:
    frame = frames_pb2.Frame()
    frame.audio.audio = audio
    frame.audio.sample_rate = sample_rate
    frame.audio.num_channels = num_channels
    return bytes(frame.SerializeToString())


async def expect_bounded_refusal_then_service(
    client: RTVIClient, send_bad: Callable[[], Awaitable[None]]
) -> None:
    """Runs ``send_bad`` under tracemalloc; checks memory, the one error, and that the session answers."""
    rss_before = resident_kib()
    tracemalloc.start()
    try:
        await send_bad()
        error = await client.wait_for("error", predicate=lambda m: "1 Hz" in m["data"]["error"])
        assert (await client.request("still", "there"))["echo"] == "there"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BOUND_BYTES, f"{peak / 1e6:.0f} MB traced for 10 kB of hostile audio"
    assert resident_kib() - rss_before < RSS_BOUND_KIB
    assert "not supported" in error["data"]["error"] and error["data"]["fatal"] is False
    errors = [m for m in client.of_type("error") if "1 Hz" in m["data"]["error"]]
    assert len(errors) == 1, "one error for the flood, not one per frame"
    # Good audio still comes back as the echo (16 kHz in, 24 kHz out).
    await client.stream_audio(bytes(range(256)) * 40, sample_rate=16000, realtime=False)
    await client.wait_for_audio(int(10240 * 1.5 * 0.9), timeout=20)


@asynccontextmanager
async def echo_session() -> AsyncIterator[RTVIClient]:
    """A ready client of a real server running the echo bot."""
    async with running_server(ServerConfig(bot=load_bot("echo"))) as (base, _app):
        url = await start_websocket_session(base)
        async with RTVIClient(url) as client:
            await client.ready()
            await client.request("warm", "up")
            yield client
    assert client.protocol_errors == []


async def test_tiny_frames_declaring_1_hz_are_refused_over_websocket() -> None:
    async with echo_session() as client:

        async def send_bad() -> None:
            for _ in range(5):
                await client.send_raw(audio_frame(bytes(2000), sample_rate=1))

        await expect_bounded_refusal_then_service(client, send_bad)


async def test_rtvi_raw_audio_declaring_1_hz_is_refused() -> None:
    chunk = base64.b64encode(bytes(2000)).decode()
    async with echo_session() as client:

        async def send_bad() -> None:
            for _ in range(3):
                data = {"base64Audio": chunk, "sampleRate": 1, "numChannels": 1}
                await client.send_message("raw-audio", data)
            batch = {"base64AudioBatch": [chunk, chunk], "sampleRate": 1, "numChannels": 1}
            await client.send_message("raw-audio-batch", batch)

        await expect_bounded_refusal_then_service(client, send_bad)
