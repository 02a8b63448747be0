"""A worker's side of the cluster: its heartbeat in the registry, and the tokens it redeems.

:class:`ClusterWorker` is the :class:`~voxloop.server.config.ClusterMember` that ``voxloop run
--cluster`` gives the server. Every ``heartbeat_secs`` it writes its record (live sessions, load,
state) with a TTL of ``ttl_beats`` heartbeats; when Redis cannot be reached it logs it once, keeps
serving the sessions it has, and writes its record again (with those sessions) as soon as Redis
answers. Leaving (the server stopped) deletes the record at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .. import __version__
from .registry import WORKERS_KEY, LoadMeter, WorkerRecord, publish, reserved_key, worker_key
from .reservations import redeem

if TYPE_CHECKING:
    from ..server.sessions import SessionRegistry

__all__ = ["ClusterWorker", "connect_redis"]

logger = logging.getLogger("voxloop.cluster")


def connect_redis(url: str, *, timeout_secs: float = 2.0) -> Redis:
    """A client for ``redis://HOST:PORT/DB`` whose calls fail fast (never hang) when Redis is away."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout_secs,
        socket_connect_timeout=timeout_secs,
        health_check_interval=0,
    )


class ClusterWorker:
    """This process as a worker of the cluster at ``redis_url``, reachable at ``advertise_url``."""

    def __init__(
        self,
        redis_url: str,
        advertise_url: str,
        *,
        capacity: int,
        transports: tuple[str, ...],
        heartbeat_secs: float = 1.0,
        ttl_beats: int = 3,
        worker_id: str | None = None,
    ) -> None:
        self.redis = connect_redis(redis_url, timeout_secs=max(0.2, heartbeat_secs))
        self.redis_url = redis_url
        self.advertise_url = advertise_url.rstrip("/")
        self.capacity = capacity
        self.transports = transports
        self.heartbeat_secs = heartbeat_secs
        self.ttl_ms = int(heartbeat_secs * ttl_beats * 1000)
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self._registered = False
        self._draining = False
        self._admitted = 0  # tokens redeemed whose session is not yet in the registry
        self._redeemed = 0  # tokens redeemed in all (see registry.publish)
        self._sessions: SessionRegistry | None = None
        self._load = LoadMeter()

    @property
    def registered(self) -> bool:
        return self._registered

    @property
    def state(self) -> str:
        return "draining" if self._draining or (self._sessions and self._sessions.draining) else "ready"

    def record(self) -> WorkerRecord:
        live = len(self._sessions) if self._sessions is not None else 0
        return WorkerRecord(
            id=self.worker_id,
            url=self.advertise_url,
            version=__version__,
            capacity=self.capacity,
            sessions=live + self._admitted,
            load=self._load.sample(),
            state=self.state,
            transports=self.transports,
        )

    @asynccontextmanager
    async def admit(self, token: str) -> AsyncIterator[bool]:
        try:
            verdict = await redeem(self.redis, token, self.worker_id)
        except (RedisError, OSError) as exc:
            # Redis may have redeemed it and the reply be lost: count it as seen either way (the
            # heartbeat script squares the count with Redis's, see registry.publish).
            self._redeemed += 1
            logger.warning("cannot redeem a cluster token, Redis is unreachable: %s", exc)
            verdict = "unreachable"
        if verdict != "ok":
            logger.info("cluster token refused: %s", verdict)
            yield False
            return
        # Counted from here (both at once, see registry.publish) until the registry counts it.
        self._redeemed += 1
        self._admitted += 1
        try:
            yield True
        finally:
            self._admitted -= 1

    async def announce_draining(self) -> None:
        self._draining = True
        try:
            await self._publish()
        except (RedisError, OSError) as exc:
            logger.warning("cannot announce draining, Redis is unreachable: %s", exc)

    async def serve(self, sessions: SessionRegistry) -> None:
        self._sessions = sessions
        try:
            await self._heartbeat()
        finally:
            await self._leave()

    async def _heartbeat(self) -> None:
        outage_logged = False
        while True:
            try:
                await self._publish()
                if not self._registered:
                    logger.info(
                        "registered in the cluster as %s (%s, %d session(s))",
                        self.worker_id,
                        self.advertise_url,
                        len(self._sessions or ()),
                    )
                    print(f"voxloop: registered in the cluster as {self.worker_id}", flush=True)
                self._registered = True
                outage_logged = False
            except (RedisError, OSError) as exc:
                if not outage_logged:  # once per outage, however long it lasts
                    outage_logged = True
                    logger.error(
                        "the cluster registry (Redis) at %s is unreachable: %s; serving the %d live "
                        "session(s), retrying every %gs",
                        self.redis_url,
                        exc,
                        len(self._sessions or ()),
                        self.heartbeat_secs,
                    )
                self._registered = False
            await asyncio.sleep(self.heartbeat_secs)  # the heartbeat's period, not a wait on anything

    async def _publish(self) -> None:
        await publish(self.redis, self.record(), self._redeemed, self.ttl_ms)

    async def _leave(self) -> None:
        """Deregister (best effort, bounded) and close the connection."""
        try:
            async with asyncio.timeout(1.0):
                await self.redis.delete(worker_key(self.worker_id), reserved_key(self.worker_id))
                await self.redis.srem(WORKERS_KEY, self.worker_id)
        except (RedisError, OSError, TimeoutError):
            pass
        finally:
            self._registered = False
            await self.redis.aclose()
