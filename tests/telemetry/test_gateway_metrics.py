"""The cluster gateway's /metrics: how it placed sessions, and the cluster's capacity from the registry.

A real redis-server, one `voxloop run` worker with room for one session and a `voxloop gateway`, as
processes on loopback; the gateway's metrics are read with prometheus_client's parser.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from helpers.cluster import RedisProcess, needs_redis, running, start_gateway, start_worker

pytestmark = needs_redis


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


async def test_the_gateway_counts_what_it_placed_refused_and_forwarded(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path)
    await redis.start()
    try:
        worker = await start_worker(redis.url, capacity=1)
        gateway = await start_gateway(redis.url)
        async with running(gateway, worker), httpx.AsyncClient(trust_env=False) as http:
            placed = await http.post(f"{gateway.url}/start", json={"transport": "websocket"})
            full = await http.post(f"{gateway.url}/start", json={"transport": "websocket"})  # booked already
            bad = await http.post(f"{gateway.url}/start", json={"transport": "carrier-pigeon"})
            unknown = await http.post(
                f"{gateway.url}/sessions/nope/api/offer", json={"sdp": "", "type": "offer"}
            )
            text = (await http.get(f"{gateway.url}/metrics")).text
            worker_text = (await http.get(f"{worker.url}/metrics")).text
    finally:
        await redis.stop()
    assert (placed.status_code, full.status_code, bad.status_code, unknown.status_code) == (
        200,
        503,
        400,
        404,
    )
    found = samples(text)

    def value(name: str, **labels: str) -> float:
        return found.get((name, frozenset(labels.items())), 0.0)

    assert value("voxloop_gateway_starts_total", transport="websocket", outcome="placed") == 1
    assert value("voxloop_gateway_starts_total", transport="websocket", outcome="full") == 1
    assert value("voxloop_gateway_starts_total", transport="unknown", outcome="bad_request") == 1
    assert value("voxloop_gateway_reserve_seconds_count") == 2
    assert 0 < value("voxloop_gateway_reserve_seconds_sum") < 1.0
    assert value("voxloop_gateway_signalling_total", outcome="unknown_session") == 1
    assert value("voxloop_cluster_workers", state="ready") == 1
    assert value("voxloop_cluster_sessions") == 1  # the place booked for the first client
    assert value("voxloop_cluster_free_places") == 0
    assert value("process_resident_memory_bytes") > 0
    assert "voxloop_sessions_live" in worker_text  # and each worker serves its own
