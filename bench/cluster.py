"""The cluster's costs: /start through gateways, and what a gateway adds to a session start.

    python bench/cluster.py            # 3 workers, 1 and 2 gateways, 10 s per phase
    python bench/cluster.py --smoke    # 1 worker, 1 gateway, 1 s (CI, well under 30 s)

Session capacity across workers (the density benchmark through a gateway) is
``python bench/sessions.py --cluster 1,2``.

Everything is real and on loopback: a throw-away ``redis-server``, ``voxloop run --bot echo
--cluster`` workers and ``voxloop gateway`` processes. This process is the load generator.

* reservations: ``--concurrency`` clients each POST ``/start`` back to back for ``--seconds``,
  spread over the gateways; every reply must be a 200 (the workers' capacity is set far above
  what gets booked, and reservations expire after 5 s). Reported: reservations per second and
  the ``/start`` latency p50/p99.
* script only: the same load on the reservation script called straight from Python (what Redis
  costs, without HTTP).
* session start: ``--sessions`` sessions one after the other, each timed from ``POST /start`` to
  ``bot-ready`` over the WebSocket, once through a gateway and once with the worker's own
  ``/start`` (as a single ``voxloop run`` serves it); the difference is what the gateway adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers.cluster import (  # noqa: E402
    RedisProcess,
    start_all,
    start_gateway,
    start_single,
    start_worker,
    stop_process,
)
from voxloop.cluster import connect_redis, reserve  # noqa: E402
from voxloop.testing.rtvi_client import RTVIClient  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def reservations(gateways: list[str], concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(trust_env=False, timeout=10, limits=limits) as http:
        for gateway in gateways:  # warm the connections
            (await http.post(f"{gateway}/start", json={"transport": "websocket"})).raise_for_status()
        end = time.perf_counter() + seconds

        async def client(index: int) -> None:
            nonlocal failures
            gateway = gateways[index % len(gateways)]
            while time.perf_counter() < end:
                began = time.perf_counter()
                reply = await http.post(f"{gateway}/start", json={"transport": "websocket"})
                latencies.append(time.perf_counter() - began)
                failures += reply.status_code != 200

        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "gateways": len(gateways),
        "concurrency": concurrency,
        "reservations_per_s": round(len(latencies) / elapsed, 1),
        "start_p50_ms": ms(percentile(latencies, 0.5)),
        "start_p99_ms": ms(percentile(latencies, 0.99)),
        "failures": failures,
    }


async def script_only(redis_url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """The reservation script alone, called from Python: Redis's share of a /start."""
    redis = connect_redis(redis_url)
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < end:
            began = time.perf_counter()
            booked = await reserve(redis, "websocket", 5)
            latencies.append(time.perf_counter() - began)
            assert booked is not None

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    await redis.aclose()
    return {
        "reservations_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": ms(percentile(latencies, 0.5)),
        "p99_ms": ms(percentile(latencies, 0.99)),
    }


async def session_starts(start_url: str, sessions: int) -> list[float]:
    times = []
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        for _ in range(sessions):
            began = time.perf_counter()
            reply = await http.post(start_url, json={"transport": "websocket"})
            reply.raise_for_status()
            start = reply.json()
            async with RTVIClient(start["wsUrl"], token=start.get("token")) as client:
                await client.ready()
                times.append(time.perf_counter() - began)
    return times


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("redis-server") is None:
        raise SystemExit("bench/cluster.py needs redis-server (make cluster-deps)")
    with tempfile.TemporaryDirectory() as directory:
        redis = RedisProcess(Path(directory))
        await redis.start()
        procs = []
        try:
            workers = await start_all(
                *(
                    start_worker(redis.url, capacity=1_000_000, transport="websocket")
                    for _ in range(args.workers)
                )
            )
            procs += workers
            gateways = await start_all(
                *(start_gateway(redis.url, "--reservation-ttl", "5") for _ in range(args.gateways))
            )
            procs += gateways
            results: dict[str, Any] = {"workers": args.workers, "cpus": os.cpu_count(), "reservations": []}
            results["script_only"] = await script_only(redis.url, args.concurrency, args.seconds)
            for count in range(1, args.gateways + 1):
                urls = [g.url for g in gateways[:count]]
                results["reservations"].append(await reservations(urls, args.concurrency, args.seconds))
            # A cluster worker refers /start to a gateway, so "direct" is a plain voxloop run.
            single = await start_single()
            procs.append(single)
            await session_starts(f"{gateways[0].url}/start", 2)  # warm both paths
            await session_starts(f"{single.url}/start", 2)
            through = await session_starts(f"{gateways[0].url}/start", args.sessions)
            direct = await session_starts(f"{single.url}/start", args.sessions)
            results["session_start"] = {
                "sessions": args.sessions,
                "gateway_p50_ms": ms(statistics.median(through)),
                "direct_p50_ms": ms(statistics.median(direct)),
                "gateway_p99_ms": ms(percentile(through, 0.99)),
                "direct_p99_ms": ms(percentile(direct, 0.99)),
                "added_p50_ms": ms(statistics.median(through) - statistics.median(direct)),
            }
            return results
        finally:
            for proc in procs:
                await stop_process(proc)
            await redis.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sessions", type=int, default=50)
    args = parser.parse_args()
    if args.smoke:
        args.workers, args.gateways, args.seconds, args.sessions, args.concurrency = 1, 1, 1.0, 5, 4
    results = asyncio.run(run(args))
    print(json.dumps(results, indent=2))
    failed = any(r["failures"] for r in results["reservations"])
    for r in results["reservations"]:
        print(
            f"{r['gateways']} gateway(s), {r['concurrency']} clients: "
            f"{r['reservations_per_s']} reservations/s, "
            f"/start p50 {r['start_p50_ms']} ms, p99 {r['start_p99_ms']} ms, {r['failures']} failure(s)"
        )
    s = results["script_only"]
    print(
        f"the reservation script alone: {s['reservations_per_s']}/s, "
        f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms"
    )
    s = results["session_start"]
    print(
        f"session start to bot-ready: through a gateway p50 {s['gateway_p50_ms']} ms, direct p50 "
        f"{s['direct_p50_ms']} ms: the gateway adds {s['added_p50_ms']} ms"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
