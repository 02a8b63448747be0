"""Ready bots, and loading a user's bot from a Python file.

A bot is a module (or file) with a function ``create_bot(transport, session)`` that builds and
returns the :class:`~voxloop.pipeline.PipelineTask` for one session (it may be async). The server
runs the task, ends it when the client leaves, and cancels it on shutdown. A bot may also define
``preload()``: called once per process before the server starts, it loads the models every session
shares, so the first caller does not wait for them.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pipeline import PipelineTask
from ..transports import Transport
from ..transports.telephony import CallInfo

__all__ = [
    "BUILT_IN",
    "BotFactory",
    "BotLoadError",
    "SessionInfo",
    "bot_preloader",
    "create_task",
    "load_bot",
]

BUILT_IN = {
    "default": "voxloop.bots.default",
    "echo": "voxloop.bots.echo",
    "realtime": "voxloop.bots.realtime",
}


@dataclass
class SessionInfo:
    """What a bot knows about its session: ``transport`` is its name (``"websocket"``, ``"webrtc"``,
    ``"twilio"``, ...); ``call`` the phone call when it is one, else None."""

    session_id: str
    transport: str
    body: dict[str, Any] = field(default_factory=dict)
    call: CallInfo | None = None


#: ``create_bot(transport, session)``, sync or async.
BotFactory = Callable[[Transport, SessionInfo], PipelineTask | Awaitable[PipelineTask]]


class BotLoadError(Exception):
    """The bot named on the command line cannot be used; the message says why."""


def load_bot(name_or_path: str) -> BotFactory:
    """A built-in bot by name, or a ``.py`` file that defines ``create_bot``."""
    if name_or_path.endswith(".py"):
        path = Path(name_or_path)
        if not path.is_file():
            raise BotLoadError(f"bot file {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"voxloop_user_bot_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise BotLoadError(f"cannot load {path} as a Python module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    elif name_or_path in BUILT_IN:
        module = importlib.import_module(BUILT_IN[name_or_path])
    else:
        known = ", ".join(sorted(BUILT_IN))
        raise BotLoadError(f"unknown bot {name_or_path!r}: use one of {known}, or a path to a .py file")
    factory = getattr(module, "create_bot", None)
    if not callable(factory):
        raise BotLoadError(f"{name_or_path} has no create_bot(transport, session) function")
    return factory  # type: ignore[no-any-return]


def bot_preloader(factory: BotFactory) -> Callable[[], Any] | None:
    """The ``preload()`` function defined beside a bot's ``create_bot``, if any."""
    module = inspect.getmodule(factory)
    preload = getattr(module, "preload", None)
    return preload if callable(preload) else None


async def create_task(factory: BotFactory, transport: Transport, session: SessionInfo) -> PipelineTask:
    """Call a bot factory, sync or async, and check what it gave back."""
    result = factory(transport, session)
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, PipelineTask):
        raise BotLoadError(f"create_bot returned {type(result).__name__}, not a PipelineTask")
    return result
