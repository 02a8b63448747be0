"""The registry and the reservation scripts against a real redis-server, in-process."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

import pytest

from helpers.cluster import RedisProcess, needs_redis, wait_until
from voxloop.cluster import ClusterWorker, WorkerRecord, connect_redis, read_workers, redeem, reserve
from voxloop.cluster.registry import publish, worker_key
from voxloop.server import SessionRegistry
from voxloop.testing import FakeClock

pytestmark = needs_redis

TRANSPORTS = ("websocket", "webrtc")


def record(
    worker_id: str, *, capacity: int = 10, sessions: int = 0, load: float = 0.0, **kw: object
) -> WorkerRecord:
    fields = {"url": f"http://{worker_id}", "version": "test", "state": "ready", "transports": TRANSPORTS}
    fields.update(kw)
    return WorkerRecord(id=worker_id, capacity=capacity, sessions=sessions, load=load, **fields)  # type: ignore[arg-type]


@pytest.fixture
async def redis(redis_server: RedisProcess) -> AsyncIterator[object]:
    client = connect_redis(redis_server.url)
    yield client
    await client.aclose()


async def test_the_least_loaded_ready_worker_wins_and_none_is_overbooked(redis) -> None:
    await publish(redis, record("a", capacity=4), 0, 10_000)
    await publish(redis, record("b", capacity=2, sessions=1), 0, 10_000)  # half full already
    await publish(redis, record("c", capacity=9, state="draining"), 0, 10_000)
    await publish(redis, record("d", capacity=9, transports=("webrtc",)), 0, 10_000)
    picks = [await reserve(redis, "websocket", 10) for _ in range(6)]
    chosen = [p.worker_id if p else None for p in picks]
    # a (0/4) first; then a (1/4) against b (1/2); ... until both are full: never c, never d.
    assert collections.Counter(chosen) == {"a": 4, "b": 1, None: 1}
    assert chosen[0] == "a" and chosen[-1] is None
    webrtc = await reserve(redis, "webrtc", 10)
    assert webrtc is not None and webrtc.worker_id == "d"


async def test_the_load_figure_breaks_ties(redis) -> None:
    await publish(redis, record("busy", load=0.9), 0, 10_000)
    await publish(redis, record("idle", load=0.1), 0, 10_000)
    first = await reserve(redis, "websocket", 10)
    assert first is not None and first.worker_id == "idle"


async def test_concurrent_reservations_never_exceed_capacity(redis) -> None:
    for name in ("a", "b", "c"):
        await publish(redis, record(name, capacity=7), 0, 10_000)
    results = await asyncio.gather(*(reserve(redis, "websocket", 10) for _ in range(40)))
    booked = collections.Counter(r.worker_id for r in results if r is not None)
    assert booked == {"a": 7, "b": 7, "c": 7}


async def test_a_token_is_redeemed_once_and_only_by_its_worker(redis) -> None:
    await publish(redis, record("a"), 0, 10_000)
    await publish(redis, record("b", sessions=5), 0, 10_000)
    booked = await reserve(redis, "websocket", 10)
    assert booked is not None and booked.worker_id == "a"
    assert await redeem(redis, booked.token, "b") == "wrong-worker"
    assert await redeem(redis, booked.token, "a") == "ok"
    assert await redeem(redis, booked.token, "a") == "unknown"
    assert await redeem(redis, "made-up", "a") == "unknown"
    (a, b) = await read_workers(redis)
    assert (a.sessions, a.reserved) == (1, 0)  # the reservation became a session in one step
    assert b.sessions == 5


async def test_an_unused_reservation_expires_and_leaves_nothing_behind(redis) -> None:
    await publish(redis, record("a", capacity=1), 0, 10_000)
    first = await reserve(redis, "websocket", 0.2)
    assert first is not None
    assert await reserve(redis, "websocket", 0.2) is None  # full while the reservation lives

    async def freed() -> bool:
        return await reserve(redis, "websocket", 0.2) is not None

    await wait_until(freed, 5, "the reservation to expire")
    assert await redeem(redis, first.token, "a") == "unknown"  # an expired token is refused

    async def nothing_left() -> bool:
        return not await redis.keys("voxloop:token:*") and not await redis.keys("voxloop:reserved:*")

    await wait_until(nothing_left, 5, "the reservation keys to expire")


async def test_a_silent_worker_leaves_the_pool_by_expiry(redis) -> None:
    await publish(redis, record("gone"), 0, 300)
    await publish(redis, record("alive"), 0, 10_000)

    async def pool() -> list[str]:
        return [w.id for w in await read_workers(redis)]

    assert await pool() == ["alive", "gone"]
    await wait_until(lambda: _equals(pool(), ["alive"]), 5, "the silent worker to expire")
    picks = {(await reserve(redis, "websocket", 10)).worker_id for _ in range(3)}  # type: ignore[union-attr]
    assert picks == {"alive"}
    assert await redis.smembers("voxloop:workers") == {"alive"}  # pruned from the index too


async def _equals(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]


async def test_the_heartbeat_counts_a_redemption_it_crosses(redis) -> None:
    """A redemption Redis made that the worker had not counted yet when it beat is not lost."""

    async def sessions() -> int:
        (w,) = await read_workers(redis)
        return w.sessions

    await publish(redis, record("w"), 0, 10_000)
    booked = await reserve(redis, "websocket", 10)
    assert booked is not None and await redeem(redis, booked.token, "w") == "ok"
    assert await sessions() == 1
    await publish(redis, record("w", sessions=0), 0, 10_000)  # counted before the reply came back
    assert await sessions() == 1
    await publish(redis, record("w", sessions=1), 1, 10_000)  # the worker has counted it
    assert await sessions() == 1
    await publish(redis, record("w", sessions=1), 2, 10_000)  # a redemption whose reply was lost
    assert await sessions() == 1


async def test_a_cluster_worker_admits_its_tokens_and_leaves_at_once(redis_server: RedisProcess) -> None:
    worker = ClusterWorker(redis_server.url, "http://w", capacity=3, transports=TRANSPORTS, worker_id="w")
    serving = asyncio.create_task(worker.serve(SessionRegistry(3, clock=FakeClock())))
    client = connect_redis(redis_server.url)
    try:
        await wait_until(lambda: _registered(worker), 5, "registration")
        booked = await reserve(client, "websocket", 10)
        assert booked is not None
        async with worker.admit("not-a-token") as admitted:
            assert not admitted
        async with worker.admit(booked.token) as admitted:
            assert admitted
            assert worker.record().sessions == 1  # counted until the session registry counts it
        assert worker.record().sessions == 0  # no session was started after all
        async with worker.admit(booked.token) as admitted:
            assert not admitted  # once only
        await worker.announce_draining()
        (w,) = await read_workers(client)
        assert w.state == "draining"
        assert await reserve(client, "websocket", 10) is None
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        assert await client.exists(worker_key("w")) == 0  # leaving deregisters at once
        await client.aclose()


async def _registered(worker: ClusterWorker) -> bool:
    return worker.registered
