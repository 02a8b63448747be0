"""FakeClock.advance lets what a timer wakes run to its end, however long its chain of wake-ups."""

from __future__ import annotations

import asyncio

from voxloop.testing import FakeClock


async def test_advance_waits_for_a_long_chain_of_work_a_timer_wakes(no_leaked_tasks: None) -> None:
    clock, hops = FakeClock(), 200  # far more loop turns than the 20 a fixed settle gave
    done = asyncio.Event()

    async def relay(n: int, inbox: asyncio.Queue[int], outbox: asyncio.Queue[int] | None) -> None:
        value = await inbox.get()
        if outbox is None:
            done.set()
        else:
            await outbox.put(value + 1)

    queues: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in range(hops)]
    relays = [
        asyncio.create_task(relay(n, queues[n], queues[n + 1] if n + 1 < hops else None)) for n in range(hops)
    ]

    async def timer() -> None:
        await clock.sleep(1)
        await queues[0].put(0)

    timing = asyncio.create_task(timer())
    await clock.advance(1)
    assert done.is_set()  # every hop of the chain ran before advance returned
    await asyncio.gather(timing, *relays)
