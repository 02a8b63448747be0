"""The published SmallWebRTC client in headless Chromium, through a gateway process to a worker process.

The page comes from the gateway; ``startBotAndConnect({endpoint: "/start"})`` books a worker there,
and the client's offers to ``/sessions/{id}/api/offer`` reach the worker through the gateway.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.browser import run_driver, write_fake_mic
from helpers.cluster import RedisProcess, cluster_status, needs_redis, running, start_gateway, start_worker
from helpers.speech import silence

pytestmark = needs_redis

START_BARE = Path(__file__).with_name("start_bare.mjs")


@pytest.fixture
async def redis_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = RedisProcess(tmp_path)
    await server.start()
    yield server
    await server.stop()


async def test_the_published_webrtc_client_through_the_gateway(
    browser_tools: None, tmp_path: Path, redis_server: RedisProcess
) -> None:
    write_fake_mic(tmp_path / "mic.wav", silence(1.0))
    worker = await start_worker(redis_server.url, transport="webrtc")
    gateway = await start_gateway(redis_server.url)
    async with running(worker, gateway):
        args = ["--url", f"{gateway.url}/", "--wav", str(tmp_path / "mic.wav")]
        report = await run_driver(START_BARE, [*args, "--profile", str(tmp_path / "profile")], timeout=60)
        status = await cluster_status(gateway.url)
    assert report.get("ok"), report
    assert set(report["started"]) == {"sessionId", "iceConfig"}
    assert report["botReady"]["version"] == "2.1.0" and report["state"] == "ready"
    assert report["requestReply"]["echo"] == {"n": 7}
    assert report["pageErrors"] == []
    assert [w["url"] for w in status["workers"]] == [worker.url]
