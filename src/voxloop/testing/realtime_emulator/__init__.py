"""A local OpenAI Realtime API (GA protocol) for offline tests, checked against the `openai` SDK's types.

``async with RealtimeEmulator() as emu:`` serves ``emu.ws_url`` (``ws://127.0.0.1:PORT/v1/realtime``);
``AsyncOpenAI(base_url=emu.base_url, api_key=emu.api_key).realtime.connect(model=...)`` reaches it. Every
client event is validated against ``openai.types.realtime.RealtimeClientEvent`` (invalid ones are recorded
in ``emu.invalid_client_events`` and answered with an ``error`` event; ``emu.assert_valid()`` fails the
test), and every server event is validated against ``RealtimeServerEvent`` before it is sent.
"""

from __future__ import annotations

from ._conversation import Truncation
from ._responses import Failure, FunctionCall, Reply, ResponseRecord
from ._server import EmulatorFailure, RealtimeEmulator
from ._session import ClientEventRecord, EmulatedConnection
from ._session_config import default_session
from ._validate import EmulatorBug, Problem

__all__ = [
    "ClientEventRecord",
    "EmulatedConnection",
    "EmulatorBug",
    "EmulatorFailure",
    "Failure",
    "FunctionCall",
    "Problem",
    "RealtimeEmulator",
    "Reply",
    "ResponseRecord",
    "Truncation",
    "default_session",
]
