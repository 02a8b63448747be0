"""200 concurrent /start calls through two gateway processes against three workers of total capacity 50."""

from __future__ import annotations

import asyncio
import collections

import httpx

from helpers.cluster import (
    RedisProcess,
    needs_redis,
    running,
    start_all,
    start_gateway,
    start_worker,
    wait_until,
)
from voxloop.cluster import connect_redis

pytestmark = needs_redis

TTL = 3.0


async def test_exactly_the_capacity_is_booked_and_nothing_is_left_after_expiry(
    redis_server: RedisProcess,
) -> None:
    url = redis_server.url
    capacities = (17, 17, 16)
    procs = await start_all(
        *(start_worker(url, capacity=c) for c in capacities),
        *(start_gateway(url, "--reservation-ttl", str(TTL)) for _ in range(2)),
    )
    workers, gateways = procs[:3], procs[3:]
    limits = httpx.Limits(max_connections=200)
    redis = connect_redis(url)
    async with running(*procs), httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as http:
        replies = await asyncio.gather(
            *(http.post(f"{gateways[i % 2].url}/start", json={"transport": "websocket"}) for i in range(200))
        )
        codes = collections.Counter(reply.status_code for reply in replies)
        assert codes == {200: 50, 503: 150}
        assert all(r.headers["Retry-After"] == "2" for r in replies if r.status_code == 503)
        booked = collections.Counter(
            reply.json()["wsUrl"].split("//")[1].split("/")[0]
            for reply in replies
            if reply.status_code == 200
        )
        assert booked == {w.url.split("//")[1]: c for w, c in zip(workers, capacities, strict=True)}

        async def free_again() -> bool:
            reply = await http.post(f"{gateways[0].url}/start", json={"transport": "websocket"})
            return reply.status_code == 200

        await wait_until(free_again, 3 * TTL, "the reservations to expire")

        async def nothing_left() -> bool:
            return not await redis.keys("voxloop:token:*") and not await redis.keys("voxloop:reserved:*")

        try:
            await wait_until(nothing_left, 3 * TTL, "every reservation key to expire")
        finally:
            await redis.aclose()
