"""What ``voxloop run`` serves: the bot, the transports, the limits."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..bots import BotFactory
from ..telemetry import Telemetry
from ..transports.params import TransportParams

if TYPE_CHECKING:
    from ..transports.telephony import TelephonyProvider
    from .sessions import SessionRegistry

__all__ = ["CLUSTER_TOKEN_HEADER", "ClusterMember", "ServerConfig"]

#: The header a cluster gateway forwards a WebRTC session's one-time token in.
CLUSTER_TOKEN_HEADER = "X-Voxloop-Cluster-Token"


class ClusterMember(Protocol):
    """A worker's link to its cluster (``voxloop.cluster.ClusterWorker`` is the one there is).

    The server asks it to admit clients that bring a cluster token, tells it when draining starts,
    and runs it (its heartbeat) for as long as the server serves.
    """

    @property
    def registered(self) -> bool:
        """True while the cluster's registry holds this worker (what readiness needs)."""
        ...

    def admit(self, token: str) -> AbstractAsyncContextManager[bool]:
        """Redeem ``token``; True inside the block if it was issued for this worker and unused.

        The session is started inside the block, so it is counted from redemption on.
        """
        ...

    async def serve(self, sessions: SessionRegistry) -> None:
        """Register and keep the registration fresh until cancelled, then deregister."""
        ...

    async def announce_draining(self) -> None:
        """Publish at once that this worker takes no new session."""
        ...


@dataclass
class ServerConfig:
    """The dev server's settings; ``transports`` is what ``/start`` and the routes serve.

    ``cluster`` makes the server a cluster worker: ``/ws`` and new WebRTC offers then also accept
    the gateway's one-time tokens, and ``/readyz`` needs the registration. ``ice_servers``
    (browser ``RTCIceServer`` dicts, see :mod:`voxloop.server.ice`) go to aiortc and to WebRTC
    clients in the ``/start`` reply.
    ``telephony``: the phone providers served (``POST /<name>`` and its media socket);
    ``public_url``: the server's address as the providers reach it; ``verify_webhooks=False`` lets
    unsigned webhooks and streams without their token through (local testing only).
    """

    bot: BotFactory
    transports: tuple[str, ...] = ("websocket",)
    max_sessions: int = 50
    require_token: bool = False
    token_ttl_secs: float = 60.0
    allowed_origins: tuple[str, ...] = ()
    transport_params: TransportParams = field(default_factory=TransportParams)
    cluster: ClusterMember | None = None
    telemetry: Telemetry | None = None
    """Metrics and traces; None: what the environment provides (:meth:`Telemetry.from_environment`)."""
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    telephony: tuple[TelephonyProvider, ...] = ()
    public_url: str | None = None
    verify_webhooks: bool = True
