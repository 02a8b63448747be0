"""Many ``voxloop run`` processes behind stateless gateways, with Redis as registry and reservation point.

- :mod:`~voxloop.cluster.registry`: what a worker publishes (its heartbeat record) and how it is read.
- :mod:`~voxloop.cluster.reservations`: the atomic booking of a worker and its one-time tokens (Lua).
- :mod:`~voxloop.cluster.worker`: :class:`ClusterWorker`, the glue in a worker (``voxloop run --cluster``).
- :mod:`~voxloop.cluster.gateway`: the gateway's ASGI app (``voxloop gateway``).

Needs the ``cluster`` extra (``pip install 'voxloop[cluster]'``: the ``redis`` client, ``httpx``).
"""

from __future__ import annotations

from .gateway import GatewayConfig, create_gateway, serve_gateway
from .registry import WorkerRecord, format_status, read_workers
from .reservations import Reservation, redeem, reserve
from .worker import ClusterWorker, connect_redis

__all__ = [
    "ClusterWorker",
    "GatewayConfig",
    "Reservation",
    "WorkerRecord",
    "connect_redis",
    "create_gateway",
    "format_status",
    "read_workers",
    "redeem",
    "reserve",
    "serve_gateway",
]
