"""Three `voxloop run` workers and two gateways on loopback, over the real wire."""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import AsyncIterator
from typing import Any

import aioice.ice
import httpx
import pytest
import pytest_asyncio
from websockets.exceptions import InvalidStatus

from helpers.cluster import (
    Proc,
    RedisProcess,
    cluster_status,
    needs_redis,
    start_all,
    start_gateway,
    start_worker,
    stop_process,
    wait_until,
)
from voxloop.testing import RTVIClient
from voxloop.testing.rtvi_webrtc_client import RTVIWebRTCClient

pytestmark = needs_redis

CAPACITY = 25


class Cluster:
    def __init__(self, redis: RedisProcess, workers: list[Proc], gateways: list[Proc]) -> None:
        self.redis = redis
        self.workers = workers
        self.gateways = gateways

    def worker_of(self, ws_url: str) -> int:
        netloc = ws_url.split("//", 1)[1].split("/", 1)[0]
        return next(i for i, w in enumerate(self.workers) if w.url.endswith(netloc))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    redis = RedisProcess(tmp_path_factory.mktemp("redis"))
    await redis.start()
    started: list[Proc] = []
    try:
        workers = await start_all(*(start_worker(redis.url, capacity=CAPACITY) for _ in range(3)))
        started += workers
        gateways = await start_all(*(start_gateway(redis.url) for _ in range(2)))
        started += gateways
        yield Cluster(redis, workers, gateways)
    finally:
        for proc in started:
            await stop_process(proc)
        await redis.stop()


async def live_sessions(cluster: Cluster, expected: int) -> bool:
    status = await cluster_status(cluster.gateways[0].url)
    return sum(w["sessions"] for w in status["workers"]) == expected


async def post_start(http: httpx.AsyncClient, gateway: str, transport: str = "websocket") -> httpx.Response:
    return await http.post(f"{gateway}/start", json={"transport": transport})


@pytest.mark.asyncio(loop_scope="module")
async def test_sixty_sessions_through_two_gateways_land_evenly_and_talk(cluster: Cluster) -> None:
    status = await cluster_status(cluster.gateways[0].url)
    assert [w["state"] for w in status["workers"]] == ["ready"] * 3
    async with httpx.AsyncClient(trust_env=False) as http:
        replies = await asyncio.gather(*(post_start(http, cluster.gateways[i % 2].url) for i in range(60)))
    starts = [reply.json() for reply in replies]
    assert all(reply.status_code == 200 for reply in replies)
    assert all(set(start) == {"wsUrl", "token"} for start in starts)  # what the published client accepts
    spread = collections.Counter(cluster.worker_of(start["wsUrl"]) for start in starts)
    assert sorted(spread.values()) == [20, 20, 20], spread
    clients = [RTVIClient(start["wsUrl"], token=start["token"]) for start in starts]
    try:
        await asyncio.gather(*(client.connect() for client in clients))
        await asyncio.gather(*(client.ready() for client in clients))
        answers = await asyncio.gather(
            *(client.request("ping", {"n": i}) for i, client in enumerate(clients))
        )
        assert [answer["echo"] for answer in answers] == [{"n": i} for i in range(60)]
        status = await cluster_status(cluster.gateways[1].url)
        assert sorted(w["sessions"] for w in status["workers"]) == [20, 20, 20]
        assert status["reserved"] == 0  # every reservation became a session
    finally:
        await asyncio.gather(*(client.close() for client in clients))


@pytest.mark.asyncio(loop_scope="module")
async def test_a_token_is_refused_twice_and_at_the_wrong_worker(cluster: Cluster) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        start = (await post_start(http, cluster.gateways[0].url)).json()
    owner = cluster.worker_of(start["wsUrl"])
    other = cluster.workers[(owner + 1) % 3].url.replace("http", "ws") + "/ws"
    await assert_refused(RTVIClient(other, token=start["token"]))
    async with RTVIClient(start["wsUrl"], token=start["token"]) as first:  # still good at its own worker
        await first.ready()
        await assert_refused(RTVIClient(start["wsUrl"], token=start["token"]))
        assert (await first.request("ping", "still here"))["echo"] == "still here"
    # A cluster worker takes no client that skipped the gateway (and so its booking).
    await assert_refused(RTVIClient(start["wsUrl"]))


async def assert_refused(client: RTVIClient) -> None:
    """The worker closes before accepting, which the handshake reports as a 403."""
    with pytest.raises(InvalidStatus) as refused:
        await client.connect()
    assert refused.value.response.status_code == 403


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiortc offers host candidates only on non-loopback interfaces: pin them to 127.0.0.1."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda *_, **__: ["127.0.0.1"])


@pytest.mark.asyncio(loop_scope="module")
async def test_webrtc_through_a_gateway_reaches_the_worker_that_owns_the_session(
    cluster: Cluster, loopback_ice: None
) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        reply = await http.post(f"{cluster.gateways[0].url}/start", json={"body": {"user": "ada"}})
    start: dict[str, Any] = reply.json()
    assert reply.status_code == 200 and set(start) == {"sessionId", "iceConfig"}
    # The offer goes through the *other* gateway: they share nothing but Redis.
    offer_url = f"{cluster.gateways[1].url}/sessions/{start['sessionId']}/api/offer"
    async with RTVIWebRTCClient(offer_url) as client:
        await client.ready()
        assert (await client.request("ping", "over webrtc"))["echo"] == "over webrtc"
        await client.renegotiate()  # a later offer, through a gateway, to the same peer connection
        assert client.renegotiations == 1
        assert (await client.request("ping", "again"))["echo"] == "again"
        await wait_until(lambda: live_sessions(cluster, 1), 10, "the earlier sessions to be gone")
    # The session's token is spent: a second client cannot start a session with it.
    async with httpx.AsyncClient(trust_env=False) as http:
        replay = await http.post(offer_url, json={"sdp": "v=0\r\n", "type": "offer"})
    assert replay.status_code == 401


@pytest.mark.asyncio(loop_scope="module")
async def test_a_worker_takes_no_webrtc_session_that_skipped_the_gateway(
    cluster: Cluster, loopback_ice: None
) -> None:
    worker = cluster.workers[0].url
    client = RTVIWebRTCClient(f"{worker}/api/offer")  # a real offer, but no booking behind it
    try:
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await client.connect()
    finally:
        await client.close()
    assert refused.value.response.status_code == 401
    assert "gateway" in refused.value.response.json()["detail"]
    async with httpx.AsyncClient(trust_env=False) as http:  # nothing was started for it
        assert (await http.get(f"{worker}/status")).json()["sessions"] == 0


@pytest.mark.asyncio(loop_scope="module")
async def test_a_worker_hands_out_no_session_of_its_own(cluster: Cluster) -> None:
    worker = cluster.workers[0].url
    async with httpx.AsyncClient(trust_env=False) as http:
        for body in ({"transport": "websocket"}, {"transport": "webrtc"}, {}):
            reply = await http.post(f"{worker}/start", json=body)
            assert reply.status_code == 409
            assert "gateway" in reply.json()["detail"]
            assert "token" not in reply.json()
        assert (await http.get(f"{worker}/status")).json()["sessions"] == 0


@pytest.mark.asyncio(loop_scope="module")
async def test_cluster_status_at_a_glance(cluster: Cluster) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxloop.cli",
        "cluster",
        "status",
        "--cluster",
        cluster.redis.url,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    text = out.decode()
    assert process.returncode == 0
    assert "3 worker(s), 3 ready" in text
    for worker in cluster.workers:
        assert worker.url in text
    async with httpx.AsyncClient(trust_env=False) as http:
        for gateway in cluster.gateways:
            assert (await http.get(f"{gateway.url}/healthz")).status_code == 200
            assert (await http.get(f"{gateway.url}/readyz")).status_code == 200
        for worker in cluster.workers:
            assert (await http.get(f"{worker.url}/healthz")).status_code == 200
            assert (await http.get(f"{worker.url}/readyz")).json() == {"status": "ready"}


@pytest.mark.asyncio(loop_scope="module")
async def test_bad_requests_get_clear_answers(cluster: Cluster, loopback_ice: None) -> None:
    gateway = cluster.gateways[0].url
    async with httpx.AsyncClient(trust_env=False) as http:
        not_json = await http.post(
            f"{gateway}/start", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["detail"]
        not_object = await http.post(f"{gateway}/start", json=[1])
        assert not_object.status_code == 400
        unknown = await http.post(f"{gateway}/start", json={"transport": "carrier-pigeon"})
        assert unknown.status_code == 400 and "not served" in unknown.json()["detail"]
        offer = await http.post(f"{gateway}/sessions/nope/api/offer", json={"sdp": "v=0", "type": "offer"})
        assert offer.status_code == 404
        # A bad offer for a real session is the worker's own 400, passed through; the session stays usable.
        start = (await http.post(f"{gateway}/start", json={"transport": "webrtc"})).json()
        bad = await http.post(f"{gateway}/sessions/{start['sessionId']}/api/offer", json={"type": "offer"})
        assert bad.status_code == 400 and "sdp" in bad.json()["detail"]
    async with RTVIWebRTCClient(f"{gateway}/sessions/{start['sessionId']}/api/offer") as client:
        await client.ready()
        assert (await client.request("ping", "after a bad offer"))["echo"] == "after a bad offer"
