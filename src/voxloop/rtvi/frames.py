"""Frames that carry RTVI traffic inside a pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..frames import DataFrame, SystemFrame


@dataclass
class ClientMessage:
    """A ``client-message`` from the client: ``type`` is its ``t``, ``data`` its ``d``."""

    msg_id: str | None
    type: str
    data: Any = None


@dataclass(eq=False)
class RTVIClientMessageFrame(SystemFrame):
    """A client message, pushed downstream for processors that answer application requests."""

    msg_id: str | None
    type: str
    data: Any = None


@dataclass(eq=False)
class RTVIServerResponseFrame(SystemFrame):
    """Answer a client message, pushed either way (sent as server-response or error-response).

    ``client_msg``: the :class:`ClientMessage` or the :class:`RTVIClientMessageFrame` answered.
    """

    client_msg: ClientMessage | RTVIClientMessageFrame
    data: Any = None
    error: str | None = None


@dataclass(eq=False)
class RTVIServerMessageFrame(SystemFrame):
    """Send ``data`` to the client as a ``server-message``, from anywhere in the pipeline."""

    data: Any


@dataclass(eq=False)
class RTVIConfigureObserverFrame(SystemFrame):
    """Change the RTVI observer's settings while running (None leaves a setting as it is)."""

    function_call_report_level: dict[str, Any] | None = None
    vad_user_speaking_enabled: bool | None = None


@dataclass(eq=False)
class RTVIActionFrame(DataFrame):
    """Run a registered 0.x action from inside the pipeline, as if the client had asked (deprecated API).

    ``arguments`` by name; with a ``message_id`` the result is sent as ``action-response`` with that id.
    """

    service: str
    action: str
    arguments: dict[str, Any] | None = None
    message_id: str | None = None
