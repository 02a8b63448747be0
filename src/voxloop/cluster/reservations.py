"""The atomic reservation: two Lua scripts, so no two gateways ever overbook a worker.

:func:`reserve` (a gateway's ``/start``) runs one script that, inside Redis, prunes the workers
whose heartbeat expired and the reservations whose time ran out, picks the least-loaded ready
worker serving the transport (the lowest share of its capacity in use, counting live sessions and
pending reservations; then the lowest CPU/memory load figure; then the id), and records a
reservation (a one-time token bound to that worker) that expires unless redeemed. Redis runs a
script alone, so the check and the booking cannot interleave with another gateway's.

:func:`redeem` (the worker, when a client presents the token) runs the other: the token is
deleted on first use, accepted only by the worker it was issued for, and its reservation turns
into a live session in the same step, so the worker's count never has a gap.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from .registry import PREFIX, WORKERS_KEY, text

__all__ = ["Redemption", "Reservation", "redeem", "reserve", "route_of"]

_RESERVE = """
local prefix, transport, ttl_ms, token = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local route_ttl_ms, body = tonumber(ARGV[5]), ARGV[6]
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local best, best_url, best_share, best_load = nil, nil, 0, 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local w = redis.call('HMGET', prefix .. 'worker:' .. id, 'state', 'capacity', 'sessions', 'load',
                       'transports', 'url')
  if not w[1] then
    redis.call('SREM', KEYS[1], id)
  elseif w[1] == 'ready' and string.find(',' .. w[5] .. ',', ',' .. transport .. ',', 1, true) then
    local rkey = prefix .. 'reserved:' .. id
    redis.call('ZREMRANGEBYSCORE', rkey, '-inf', now_ms)
    local capacity = tonumber(w[2])
    local used = tonumber(w[3]) + redis.call('ZCARD', rkey)
    if used < capacity then
      local share, load = used / capacity, tonumber(w[4])
      if best == nil or share < best_share or (share == best_share and (load < best_load
          or (load == best_load and id < best))) then
        best, best_url, best_share, best_load = id, w[6], share, load
      end
    end
  end
end
if best == nil then return nil end
local rkey = prefix .. 'reserved:' .. best
redis.call('ZADD', rkey, now_ms + ttl_ms, token)
if redis.call('PTTL', rkey) < ttl_ms + 1000 then  -- the set outlives its last member, no longer
  redis.call('PEXPIRE', rkey, ttl_ms + 1000)
end
redis.call('SET', prefix .. 'token:' .. token, best, 'PX', ttl_ms)
if route_ttl_ms > 0 then
  local route = prefix .. 'route:' .. token
  redis.call('HSET', route, 'worker', best, 'body', body)
  redis.call('PEXPIRE', route, route_ttl_ms)
end
return {best, best_url}
"""

_REDEEM = """
local prefix, token, me = ARGV[1], ARGV[2], ARGV[3]
local tkey = prefix .. 'token:' .. token
local owner = redis.call('GET', tkey)
if not owner then return 'unknown' end
if owner ~= me then return 'wrong-worker' end
redis.call('DEL', tkey)
if redis.call('ZREM', prefix .. 'reserved:' .. me, token) == 0 then return 'expired' end
local wkey = prefix .. 'worker:' .. me
if redis.call('EXISTS', wkey) == 1 then
  redis.call('HINCRBY', wkey, 'sessions', 1)
  redis.call('HINCRBY', wkey, 'redeemed', 1)
end
return 'ok'
"""


@dataclass(frozen=True)
class Reservation:
    """A booked place: the worker's id and advertised URL, and the token only it accepts."""

    worker_id: str
    worker_url: str
    token: str


#: What :func:`redeem` answers: ``ok``, or why not (``unknown`` covers used and expired tokens).
Redemption = str


def new_token() -> str:
    return secrets.token_urlsafe(18)


async def reserve(
    redis: Redis,
    transport: str,
    ttl_secs: float,
    *,
    route_ttl_secs: float = 0,
    body: dict[str, Any] | None = None,
) -> Reservation | None:
    """Book the least-loaded ready worker serving ``transport`` for ``ttl_secs``; None when all are full.

    ``route_ttl_secs`` (WebRTC) also records which worker owns the session (and its start ``body``)
    for that long, so that any gateway can forward the session's signalling.
    """
    token = new_token()
    args: list[str | int] = [PREFIX, transport, max(1, int(ttl_secs * 1000)), token]
    args += [int(route_ttl_secs * 1000), json.dumps(body or {})]
    reply = await redis.register_script(_RESERVE)(keys=[WORKERS_KEY], args=args)
    if not reply:
        return None
    worker_id, worker_url = reply
    return Reservation(worker_id=str(worker_id), worker_url=str(worker_url), token=token)


async def redeem(redis: Redis, token: str, worker_id: str) -> Redemption:
    """Use ``token`` at ``worker_id``: ``ok`` once, for the worker it was issued for."""
    return str(await redis.register_script(_REDEEM)(keys=[], args=[PREFIX, token, worker_id]))


async def route_of(redis: Redis, token: str) -> tuple[str, dict[str, Any]] | None:
    """The worker owning a WebRTC gateway session, and its start body; None if unknown or expired."""
    fields = {text(k): text(v) for k, v in (await redis.hgetall(PREFIX + "route:" + token)).items()}
    if not fields or "worker" not in fields:
        return None
    try:
        body = json.loads(fields.get("body") or "{}")
    except ValueError:
        body = {}
    return fields["worker"], body if isinstance(body, dict) else {}
