"""`voxloop gateway` as a process: its ICE servers in /start replies, and SIGTERM ending it cleanly."""

from __future__ import annotations

import asyncio
import signal

import httpx
from redis.asyncio import Redis

from helpers.cluster import RedisProcess, needs_redis, running, start_gateway, stop_process
from voxloop.cluster import WorkerRecord, connect_redis
from voxloop.cluster.registry import publish

pytestmark = needs_redis


class SlowWorker:
    """A worker's HTTP side that holds each request until told to answer (no voxloop inside)."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.answer = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        await reader.readexactly(length)
        self.arrived.set()
        await self.answer.wait()
        body = b'{"sdp": "v=0", "type": "answer", "pc_id": "p"}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def register(redis: Redis, url: str) -> None:
    record = WorkerRecord(
        id="slow",
        url=url,
        version="test",
        capacity=5,
        sessions=0,
        load=0.0,
        state="ready",
        transports=("webrtc",),
    )
    await publish(redis, record, 0, ttl_ms=60_000)


async def test_the_gateway_hands_out_its_ice_servers(redis_server: RedisProcess) -> None:
    redis = connect_redis(redis_server.url)
    try:
        await register(redis, "http://127.0.0.1:9")  # never called: /start only books it
        gateway = await start_gateway(
            redis_server.url,
            "--ice-server",
            "turns:turn.example.com:443?transport=tcp",
            "--ice-username",
            "ada",
            "--ice-credential",
            "s3cret",
        )
        async with running(gateway), httpx.AsyncClient(trust_env=False) as http:
            start = (await http.post(f"{gateway.url}/start", json={"transport": "webrtc"})).json()
        assert start["iceConfig"] == {
            "iceServers": [
                {
                    "urls": "turns:turn.example.com:443?transport=tcp",
                    "username": "ada",
                    "credential": "s3cret",
                }
            ]
        }
    finally:
        await redis.aclose()


async def test_sigterm_lets_a_request_in_flight_finish_and_exits_0(redis_server: RedisProcess) -> None:
    worker = SlowWorker()
    redis = connect_redis(redis_server.url)
    try:
        await register(redis, await worker.start())
        gateway = await start_gateway(redis_server.url)
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
                start = (await http.post(f"{gateway.url}/start", json={"transport": "webrtc"})).json()
                offer = asyncio.create_task(
                    http.post(
                        f"{gateway.url}/sessions/{start['sessionId']}/api/offer",
                        json={"sdp": "v=0", "type": "offer"},
                    )
                )
                try:
                    await asyncio.wait_for(worker.arrived.wait(), 15)  # the gateway is forwarding it
                    gateway.process.send_signal(signal.SIGTERM)
                    await gateway.wait_for_line("gateway stopping", timeout=15)
                    worker.answer.set()
                    reply = await offer
                finally:
                    offer.cancel()
            assert reply.status_code == 200 and reply.json()["type"] == "answer"
            code = await asyncio.wait_for(gateway.process.wait(), 15)
            assert code == 0, "".join(gateway.lines)
        finally:
            await stop_process(gateway, signal.SIGKILL)
    finally:
        await redis.aclose()
        await worker.stop()
