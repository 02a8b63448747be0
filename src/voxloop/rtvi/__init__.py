"""The RTVI protocol: message models, the sans-I/O core, the processor and the observer."""

from __future__ import annotations

from .frames import (
    ClientMessage,
    RTVIActionFrame,
    RTVIClientMessageFrame,
    RTVIConfigureObserverFrame,
    RTVIServerMessageFrame,
    RTVIServerResponseFrame,
)
from .legacy import (
    RTVIAction,
    RTVIActionArgument,
    RTVIService,
    RTVIServiceOption,
    RTVIServiceOptionConfig,
)
from .messages import server_message, validate_server_message
from .observer import FunctionCallReportLevel, RTVIObserver, RTVIObserverParams
from .processor import RTVIProcessor
from .protocol import (
    PROTOCOL_VERSION,
    ClientRequest,
    Negotiation,
    Rejection,
    RequestError,
    decode_client_message,
    negotiate_version,
)

__all__ = [
    "PROTOCOL_VERSION",
    "ClientMessage",
    "ClientRequest",
    "FunctionCallReportLevel",
    "Negotiation",
    "RTVIAction",
    "RTVIActionArgument",
    "RTVIActionFrame",
    "RTVIClientMessageFrame",
    "RTVIConfigureObserverFrame",
    "RTVIObserver",
    "RTVIObserverParams",
    "RTVIProcessor",
    "RTVIServerMessageFrame",
    "RTVIServerResponseFrame",
    "RTVIService",
    "RTVIServiceOption",
    "RTVIServiceOptionConfig",
    "Rejection",
    "RequestError",
    "decode_client_message",
    "negotiate_version",
    "server_message",
    "validate_server_message",
]
