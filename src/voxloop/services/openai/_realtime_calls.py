"""The Realtime service's function calls: the model's calls run through the service's
:class:`~voxloop.services.functions.FunctionCallRunner`, after the user's turn has been written; calls an
interruption overtook are answered ``CANCELLED`` (the server must see every call answered).

Functions of :class:`~voxloop.services.openai.realtime.OpenAIRealtimeService` (their first argument).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._realtime_responses import Response

if TYPE_CHECKING:
    from .realtime import OpenAIRealtimeService

Call = tuple[str, str, str]  # (call_id, name, arguments JSON)
CANCELLED = "CANCELLED"


async def run_calls(svc: OpenAIRealtimeService, response: Response) -> None:
    """The calls of a finished response: start them, or answer them cancelled if the user cut in."""
    calls = [(call_id, name, arguments) for call_id, (name, arguments) in response.calls.items()]
    if response.interrupted:
        await answer_cancelled(svc, calls)
    else:
        await start_calls(svc, calls)


async def start_calls(svc: OpenAIRealtimeService, calls: list[Call]) -> None:
    """Run the model's function calls; while the user's turn is still being written, after it.

    The server answers before the user aggregator has written the user's words, so calls started at
    once would land in the context before the question that asked for them.
    """
    if svc._user_turn_open:
        svc._deferred_calls.extend(calls)
        return
    await svc._functions.start_calls(calls, svc._context)


async def run_deferred_calls(svc: OpenAIRealtimeService) -> None:
    """The user's turn was written: the calls that waited for it start now."""
    calls, svc._deferred_calls = svc._deferred_calls, []
    if calls:
        await svc._functions.start_calls(calls, svc._context)


async def cancel_deferred_calls(svc: OpenAIRealtimeService) -> None:
    """An interruption: the calls still waiting for the user's turn never run; the server is told."""
    calls, svc._deferred_calls = svc._deferred_calls, []
    await answer_cancelled(svc, calls)


async def answer_cancelled(svc: OpenAIRealtimeService, calls: Iterable[Call]) -> None:
    for call_id, _name, _arguments in calls:
        item = {"type": "function_call_output", "call_id": call_id, "output": CANCELLED}
        await svc._send("item", "conversation.item.create", item=item)
