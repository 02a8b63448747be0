"""The worker registry in Redis: one short-lived hash per worker, kept fresh by its heartbeat.

Keys (all under :data:`PREFIX`):

- ``workers``: a set of worker ids, the index. An id whose hash has expired is pruned by the next
  reservation (see :mod:`voxloop.cluster.reservations`) or status read.
- ``worker:{id}``: a hash (``id``, ``url``, ``version``, ``capacity``, ``sessions``, ``load``,
  ``state`` = ``ready`` | ``draining``, ``transports``, ``beat``) with a TTL of a few heartbeats,
  so a worker that dies silently leaves the pool by expiry alone.
- ``reserved:{id}``: a sorted set of reservation tokens scored by their expiry (ms).
- ``token:{token}``: the worker a token was issued for, expiring with the reservation.
- ``route:{token}``: for WebRTC, the worker owning a gateway session (and the start body), so any
  gateway can forward its later signalling.

Everything is one Redis database and plain commands: a standalone Redis (or a primary with a
replica), not Redis Cluster (the scripts touch keys they compute).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

__all__ = [
    "PREFIX",
    "WorkerRecord",
    "format_status",
    "publish",
    "read_workers",
    "reserved_key",
    "text",
    "worker_key",
]

PREFIX = "voxloop:"
WORKERS_KEY = PREFIX + "workers"


def text(value: bytes | str) -> str:
    """A Redis reply as text (the clients here decode replies; the types allow bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def worker_key(worker_id: str) -> str:
    return f"{PREFIX}worker:{worker_id}"


def reserved_key(worker_id: str) -> str:
    return f"{PREFIX}reserved:{worker_id}"


@dataclass
class WorkerRecord:
    """What a worker publishes about itself (and, read back, ``reserved``: its pending reservations)."""

    id: str
    url: str
    version: str
    capacity: int
    sessions: int
    load: float
    state: str
    transports: tuple[str, ...]
    reserved: int = 0

    def fields(self) -> dict[str, str]:
        """The hash fields of the heartbeat (``reserved`` is not the worker's to write)."""
        return {
            "id": self.id,
            "url": self.url,
            "version": self.version,
            "capacity": str(self.capacity),
            "sessions": str(self.sessions),
            "load": f"{self.load:.3f}",
            "state": self.state,
            "transports": ",".join(self.transports),
            "beat": str(int(time.time() * 1000)),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str], reserved: int = 0) -> WorkerRecord:
        return cls(
            id=fields.get("id", ""),
            url=fields.get("url", ""),
            version=fields.get("version", ""),
            capacity=int(fields.get("capacity", "0")),
            sessions=int(fields.get("sessions", "0")),
            load=float(fields.get("load", "0")),
            state=fields.get("state", "unknown"),
            transports=tuple(t for t in fields.get("transports", "").split(",") if t),
            reserved=reserved,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "version": self.version,
            "state": self.state,
            "capacity": self.capacity,
            "sessions": self.sessions,
            "reserved": self.reserved,
            "load": self.load,
            "transports": list(self.transports),
        }


async def read_workers(redis: Redis) -> list[WorkerRecord]:
    """Every registered worker, by id, with its live (unexpired) reservation count."""
    ids = sorted(text(i) for i in await redis.smembers(WORKERS_KEY))
    if not ids:
        return []
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in ids:
            pipe.hgetall(worker_key(worker_id))
            pipe.zcount(reserved_key(worker_id), now_ms + 1, "+inf")
        replies = await pipe.execute()
    workers = []
    for index, worker_id in enumerate(ids):
        fields, reserved = replies[2 * index], replies[2 * index + 1]
        if fields:
            workers.append(
                WorkerRecord.from_fields({text(k): text(v) for k, v in fields.items()}, int(reserved))
            )
        else:  # expired: the worker is gone
            await redis.srem(WORKERS_KEY, worker_id)
    return workers


# The heartbeat: the record, with the sessions of redemptions Redis has made that the worker had
# not yet heard of when it counted (``redeemed`` is Redis's running count, ARGV[2] the worker's), so
# the count is exact even while a redemption and a heartbeat cross.
_HEARTBEAT = """
local key, seen, ttl_ms = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local unseen = 0
if redis.call('EXISTS', key) == 1 then
  unseen = math.max(0, (tonumber(redis.call('HGET', key, 'redeemed')) or seen) - seen)
end
for i = 3, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
redis.call('HINCRBY', key, 'sessions', unseen)
redis.call('HSET', key, 'redeemed', seen + unseen)
redis.call('PEXPIRE', key, ttl_ms)
redis.call('SADD', KEYS[2], ARGV[4])
return unseen
"""


async def publish(redis: Redis, record: WorkerRecord, redeemed: int, ttl_ms: int) -> None:
    """Write ``record`` for ``ttl_ms``; ``redeemed``: the tokens this worker has redeemed so far."""
    fields = [item for pair in record.fields().items() for item in pair]
    assert fields[0] == "id"  # the script reads the id at ARGV[4]
    args: list[str | int] = [redeemed, ttl_ms, *fields]
    await redis.register_script(_HEARTBEAT)(keys=[worker_key(record.id), WORKERS_KEY], args=args)


def format_status(workers: list[WorkerRecord]) -> str:
    """A table for a terminal: one worker a line, then the totals."""
    if not workers:
        return "no worker registered"
    header = f"{'worker':<28} {'state':<9} {'sessions':>8} {'reserved':>8} {'capacity':>8} {'load':>5}  url"
    lines = [header]
    for w in workers:
        lines.append(
            f"{w.id:<28} {w.state:<9} {w.sessions:>8} {w.reserved:>8} {w.capacity:>8} {w.load:>5.2f}  {w.url}"
        )
    ready = [w for w in workers if w.state == "ready"]
    free = sum(max(0, w.capacity - w.sessions - w.reserved) for w in ready)
    lines.append(
        f"{len(workers)} worker(s), {len(ready)} ready; {sum(w.sessions for w in workers)} session(s), "
        f"{free} free"
    )
    return "\n".join(lines)


class LoadMeter:
    """This process's load, 0..1: the larger of its CPU share and its memory share.

    Shares of what the process may use: its container's limits (cgroup v2 ``cpu.max`` and
    ``memory.max`` under ``cgroup``) when it has some, else the cores it may run on and the
    machine's memory. Read from ``/proc`` (Linux); elsewhere the CPU share alone, from :func:`os.times`.
    """

    def __init__(self, cgroup: Path = Path("/sys/fs/cgroup")) -> None:
        self.cores = _cores(cgroup)
        self.memory_bytes = _memory_limit(cgroup) or _total_memory_bytes()
        self._last = (time.monotonic(), _cpu_seconds())

    def sample(self) -> float:
        now, cpu = time.monotonic(), _cpu_seconds()
        wall = now - self._last[0]
        cpu_share = (cpu - self._last[1]) / (wall * self.cores) if wall > 0 else 0.0
        self._last = (now, cpu)
        memory_share = _rss_bytes() / self.memory_bytes if self.memory_bytes else 0.0
        return max(0.0, min(1.0, max(cpu_share, memory_share)))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cores(cgroup: Path) -> float:
    """The cores this process may use: its CPU affinity, capped by a cgroup CPU quota."""
    cores = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    quota = (_read(cgroup / "cpu.max") or "max").split()
    if len(quota) == 2 and quota[0] != "max":
        try:
            cores = min(cores, int(quota[0]) / int(quota[1]))
        except (ValueError, ZeroDivisionError):
            pass
    return cores


def _memory_limit(cgroup: Path) -> int:
    """The cgroup's memory limit in bytes; 0 for none."""
    limit = _read(cgroup / "memory.max")
    return int(limit) if limit and limit.isdigit() else 0


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0
