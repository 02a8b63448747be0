"""What ``voxloop run`` serves: the bot, the transports, the limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..bots import BotFactory
from ..transports.params import TransportParams

__all__ = ["ServerConfig"]


@dataclass
class ServerConfig:
    """The dev server's settings; ``transports`` is what ``/start`` and the routes serve."""

    bot: BotFactory
    transports: tuple[str, ...] = ("websocket",)
    max_sessions: int = 50
    require_token: bool = False
    token_ttl_secs: float = 60.0
    allowed_origins: tuple[str, ...] = ()
    transport_params: TransportParams = field(default_factory=TransportParams)
