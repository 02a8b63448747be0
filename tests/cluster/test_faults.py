"""Faults and draining with real processes: a worker killed, Redis restarted, SIGTERM with live sessions."""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from typing import Any

import httpx

from helpers.cluster import (
    Proc,
    RedisProcess,
    cluster_status,
    needs_redis,
    running,
    start_all,
    start_gateway,
    start_worker,
    stop_process,
    wait_until,
)
from voxloop.testing import RTVIClient

pytestmark = needs_redis


async def start_sessions(gateway: str, count: int) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        replies = await asyncio.gather(
            *(http.post(f"{gateway}/start", json={"transport": "websocket"}) for _ in range(count))
        )
    assert [r.status_code for r in replies] == [200] * count, [r.text for r in replies]
    return [r.json() for r in replies]


async def connected(starts: list[dict[str, Any]]) -> list[RTVIClient]:
    clients = [RTVIClient(s["wsUrl"], token=s["token"]) for s in starts]
    await asyncio.gather(*(c.connect() for c in clients))
    await asyncio.gather(*(c.ready() for c in clients))
    return clients


def netloc(proc: Proc) -> str:
    return proc.url.split("//", 1)[1]


def landed(starts: list[dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(s["wsUrl"].split("//", 1)[1].split("/", 1)[0] for s in starts)


async def worker_urls(gateway: str) -> set[str]:
    return {w["url"] for w in (await cluster_status(gateway))["workers"]}


async def test_a_killed_worker_gets_no_session_once_its_heartbeat_expired(redis_server: RedisProcess) -> None:
    doomed, survivor, gateway = await start_all(
        start_worker(redis_server.url), start_worker(redis_server.url), start_gateway(redis_server.url)
    )
    async with running(survivor, gateway):
        assert await worker_urls(gateway.url) == {doomed.url, survivor.url}
        await stop_process(doomed, signal.SIGKILL)  # no chance to deregister

        async def expired() -> bool:
            return await worker_urls(gateway.url) == {survivor.url}

        await wait_until(expired, 10, "the killed worker's heartbeat to expire")
        starts = await start_sessions(gateway.url, 6)
        assert landed(starts) == {netloc(survivor): 6}


async def test_redis_restarted_live_sessions_go_on_and_the_cluster_recovers(
    redis_server: RedisProcess,
) -> None:
    worker, gateway = await start_all(start_worker(redis_server.url), start_gateway(redis_server.url))
    async with running(worker, gateway):
        clients = await connected(await start_sessions(gateway.url, 2))
        try:
            await redis_server.stop()
            await worker.wait_for_line("is unreachable", timeout=10)
            async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
                began = time.monotonic()
                refused = await http.post(f"{gateway.url}/start", json={"transport": "websocket"})
                assert refused.status_code == 503 and refused.headers["Retry-After"]
                assert time.monotonic() - began < 5  # an answer, not a hang
            for i, client in enumerate(clients):  # the live sessions do not notice
                assert (await client.request("ping", i))["echo"] == i
            await redis_server.start()  # an empty Redis on the same port: the registry comes back by itself

            async def recovered() -> bool:
                workers = (await cluster_status(gateway.url))["workers"]
                return [(w["url"], w["sessions"]) for w in workers] == [(worker.url, 2)]

            await wait_until(recovered, 10, "the worker to register again with its 2 sessions")
            (late,) = await connected(await start_sessions(gateway.url, 1))
            clients.append(late)
            assert (await late.request("ping", "after"))["echo"] == "after"
        finally:
            await asyncio.gather(*(c.close() for c in clients))


async def test_sigterm_drains_ten_live_sessions_and_exits_0(redis_server: RedisProcess) -> None:
    drain_timeout = 30
    draining, gateway = await start_all(
        start_worker(redis_server.url, drain=drain_timeout), start_gateway(redis_server.url)
    )
    clients = await connected(await start_sessions(gateway.url, 10))
    other = await start_worker(redis_server.url)
    async with running(other, gateway):
        try:
            began = time.monotonic()
            draining.process.send_signal(signal.SIGTERM)
            await draining.wait_for_line("draining 10 session(s)")
            async with httpx.AsyncClient(trust_env=False) as http:
                assert (await http.get(f"{draining.url}/readyz")).status_code == 503
                assert (await http.get(f"{draining.url}/healthz")).status_code == 200
            later = await start_sessions(gateway.url, 4)
            assert landed(later) == {netloc(other): 4}  # no new session goes to the draining worker
            for i, client in enumerate(clients):  # the live ones go on, then finish as they like
                assert (await client.request("ping", i))["echo"] == i
            await asyncio.gather(*(c.close() for c in clients))
            code = await asyncio.wait_for(draining.process.wait(), drain_timeout)
            assert code == 0, "".join(draining.lines)
            assert time.monotonic() - began < drain_timeout
            assert await worker_urls(gateway.url) == {other.url}  # it left the registry on its way out
        finally:
            await asyncio.gather(*(c.close() for c in clients))
            await stop_process(draining)


async def test_the_drain_timeout_ends_what_is_left_cleanly(redis_server: RedisProcess) -> None:
    worker, gateway = await start_all(
        start_worker(redis_server.url, drain=1), start_gateway(redis_server.url)
    )
    async with running(gateway):
        clients = await connected(await start_sessions(gateway.url, 2))
        try:
            worker.process.send_signal(signal.SIGTERM)
            for client in clients:
                await asyncio.wait_for(client.closed.wait(), 15)  # closed by the server, and told why
                (error,) = client.of_type("error")
                assert error["data"] == {"error": "the server is shutting down", "fatal": True}
            assert await asyncio.wait_for(worker.process.wait(), 15) == 0
        finally:
            await asyncio.gather(*(c.close() for c in clients))
            await stop_process(worker)
