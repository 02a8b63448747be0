"""`voxloop run --log-format json` as an operator starts it: a real process, its /metrics and its log."""

from __future__ import annotations

import asyncio
import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from helpers.cli import free_port, interrupt, voxloop_process
from voxloop.testing import RTVIClient


def live_sessions(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "voxloop_sessions_live":
            return sum(s.value for s in family.samples)
    raise AssertionError("no voxloop_sessions_live on /metrics")


async def test_the_server_serves_metrics_and_logs_json_lines_with_session_ids() -> None:
    port = free_port()
    args = ["run", "--port", str(port), "--bot", "echo", "--transport", "websocket", "--log-format", "json"]
    async with voxloop_process(*args) as process:
        assert process.stdout is not None and process.stderr is not None
        await asyncio.wait_for(process.stdout.readline(), 30)  # the banner
        await asyncio.wait_for(process.stdout.readline(), 30)  # listening
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            start = (await http.post(f"{base}/start", json={"transport": "websocket"})).json()
            async with RTVIClient(start["wsUrl"]) as client:
                await client.ready()
                during = (await http.get(f"{base}/metrics")).text
            after = (await http.get(f"{base}/metrics")).text
        code = await interrupt(process)
        log = (await process.stderr.read()).decode()
    assert code == 0, log
    assert live_sessions(during) == 1
    assert "process_resident_memory_bytes" in after  # prometheus_client's process metrics come along
    records = [json.loads(line) for line in log.splitlines()]  # every line is JSON
    started = [r for r in records if r["message"].startswith("session ") and " started over " in r["message"]]
    assert len(started) == 1
    session = started[0]["message"].split()[1]
    assert started[0]["session_id"] == session
    ended = [r for r in records if r["message"].startswith(f"session {session} ended")]
    assert ended and ended[0]["session_id"] == session
