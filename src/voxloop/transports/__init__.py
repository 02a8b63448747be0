"""Transports: how frames reach the client and come back (WebSocket, WebRTC) and their wire formats.

Every transport implements :class:`Transport`, which is all a bot relies on. The WebSocket wire
format lives in :mod:`voxloop.transports.serializers`; the transports themselves are imported from
their modules (``voxloop.transports.websocket``, ``voxloop.transports.webrtc``: the latter needs
the ``webrtc`` extra).
"""

from .base_input import BaseInputTransport
from .base_output import BaseOutputTransport
from .params import TransportParams
from .transport import CLIENT_CONNECTED, CLIENT_DISCONNECTED, Transport

__all__ = [
    "CLIENT_CONNECTED",
    "CLIENT_DISCONNECTED",
    "BaseInputTransport",
    "BaseOutputTransport",
    "Transport",
    "TransportParams",
]
