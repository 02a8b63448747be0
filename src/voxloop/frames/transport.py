"""Application messages between the bot and the client (RTVI messages travel in these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._base import DataFrame, SystemFrame


@dataclass(eq=False)
class InputTransportMessageFrame(SystemFrame):
    """A message received from the client."""

    message: Any


@dataclass(eq=False)
class OutputTransportMessageFrame(DataFrame):
    """A message for the client, sent in order with the audio before it."""

    message: Any


@dataclass(eq=False)
class OutputTransportMessageUrgentFrame(SystemFrame):
    """A message for the client, sent at once."""

    message: Any
