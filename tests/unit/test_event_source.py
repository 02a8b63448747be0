"""EventSource: the owner of its handlers' tasks, including when a handler finishes them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from voxloop.pipeline._events import EventSource
from voxloop.testing import MemoryTransport


class Door(EventSource):
    """A transport in miniature: opening fires one event, closing fires the other and finishes."""

    def __init__(self) -> None:
        super().__init__()
        self._register_event_handler("on_open")
        self._register_event_handler("on_closed")
        self.closed = False

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._call_event_handler("on_closed")
        await self._finish_event_handlers()


async def test_handlers_that_close_from_inside_do_not_wait_for_each_other(
    caplog: pytest.LogCaptureFixture, no_leaked_tasks: None
) -> None:
    door, finished = Door(), []

    @door.event_handler("on_open")
    async def reject(d: Door) -> None:  # refuses the client at once
        await d.close()
        finished.append("reject")

    @door.event_handler("on_closed")
    async def clean_up(d: Door) -> None:  # closes too, as cleanup code does
        await d.close()
        finished.append("clean_up")

    with caplog.at_level(logging.WARNING, "voxloop"):
        await door._call_event_handler("on_open")
        async with asyncio.timeout(2):  # the grace period is 5 s: a mutual wait would pass this
            await door.close()
    assert sorted(finished) == ["clean_up", "reject"]  # both ran to the end, neither was cancelled
    assert "cancelling" not in caplog.text


async def test_memory_transport_closed_by_its_connected_and_disconnected_handlers(
    no_leaked_tasks: None,
) -> None:
    transport, finished = MemoryTransport(), asyncio.Event()

    @transport.event_handler("on_client_connected")
    async def reject(t: MemoryTransport) -> None:
        await t.close()
        finished.set()

    @transport.event_handler("on_client_disconnected")
    async def clean_up(t: MemoryTransport) -> None:
        await t.close()

    await transport._started()
    async with asyncio.timeout(2):
        await finished.wait()
        await transport.close()
    assert transport.client.closed.is_set()
