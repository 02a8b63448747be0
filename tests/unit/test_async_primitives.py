"""Mailbox and TaskSet: the async building blocks processors, observers and transports share."""

from __future__ import annotations

import asyncio
import logging

import pytest

from voxloop.frames import (
    EndFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    StartFrame,
    TextFrame,
    UserStartedSpeakingFrame,
)
from voxloop.pipeline import Mailbox, TaskSet, frame_survives_interruption

pytestmark = pytest.mark.usefixtures("no_leaked_tasks")


# -- Mailbox ---------------------------------------------------------------------------------


async def test_mailbox_gives_items_in_arrival_order() -> None:
    box: Mailbox[int] = Mailbox()
    for n in range(5):
        box.put(n)
    assert len(box) == 5 and box
    assert [await box.get() for _ in range(3)] == [0, 1, 2]
    assert box.take_all() == [3, 4]
    assert not box and len(box) == 0
    with pytest.raises(IndexError):
        box.pop()


async def test_get_waits_for_the_next_put_and_wakes_on_it() -> None:
    box: Mailbox[str] = Mailbox()
    getter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    assert not getter.done()  # nothing to take yet
    box.put("a")
    assert await asyncio.wait_for(getter, 1.0) == "a"


async def test_one_wake_up_per_burst_and_none_is_lost() -> None:
    """A drainer that takes batches sees every item exactly once, however puts and takes interleave."""
    box: Mailbox[int] = Mailbox()
    seen: list[int] = []
    wake_ups = 0

    async def drain() -> None:
        nonlocal wake_ups
        while len(seen) < 30:
            await box.wait_for_item()
            wake_ups += 1
            seen.extend(box.take_all())

    drainer = asyncio.create_task(drain())
    for burst in range(3):
        for n in range(10):
            box.put(burst * 10 + n)
        await asyncio.sleep(0)  # the drainer runs between bursts
    await asyncio.wait_for(drainer, 1.0)
    assert seen == list(range(30))
    assert wake_ups == 3  # one per burst, not one per item


async def test_wait_for_item_returns_at_once_when_not_empty() -> None:
    box: Mailbox[int] = Mailbox()
    box.put(1)
    await asyncio.wait_for(box.wait_for_item(), 0.1)
    assert box.pop() == 1


async def test_wait_for_item_keeps_waiting_if_an_interruption_emptied_the_box() -> None:
    box: Mailbox[int] = Mailbox()
    box.put(1)
    box.drop_interrupted()  # no predicate: everything is interruptible
    waiter = asyncio.create_task(box.wait_for_item())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.put(2)
    await asyncio.wait_for(waiter, 1.0)
    assert box.take_all() == [2]


async def test_interruption_keeps_system_and_uninterruptible_frames_in_order() -> None:
    box = Mailbox(frame_survives_interruption)
    start, text1, end = StartFrame(), TextFrame("a"), EndFrame()
    result = FunctionCallResultFrame(function_name="f", tool_call_id="1", arguments={}, result=1)
    speaking, text2 = UserStartedSpeakingFrame(), TextFrame("b")
    for frame in (start, text1, end, result, speaking, text2):
        box.put(frame)
    assert box.drop_interrupted() == 2
    assert list(box) == [start, end, result, speaking]  # system (Start, speaking) and uninterruptible


async def test_interruption_filter_sees_whole_items() -> None:
    box: Mailbox[tuple[str, int]] = Mailbox(lambda item: item[1] > 0)
    for item in [("a", 0), ("b", 1), ("c", 0), ("d", 2)]:
        box.put(item)
    assert box.drop_interrupted() == 2
    assert box.take_all() == [("b", 1), ("d", 2)]
    assert box.drop_interrupted() == 0  # empty: nothing to drop


def test_frame_survival_rule() -> None:
    assert frame_survives_interruption(InterruptionFrame())  # system
    assert frame_survives_interruption(EndFrame())  # uninterruptible
    assert not frame_survives_interruption(TextFrame("x"))


# -- TaskSet ---------------------------------------------------------------------------------


async def test_spawned_tasks_are_named_owned_and_forgotten_when_done() -> None:
    tasks = TaskSet("owner")
    done = asyncio.Event()
    finished = tasks.spawn(asyncio.sleep(0, result=7), "owner::quick")
    waiting = tasks.spawn(done.wait(), "owner::waiting")
    assert waiting.get_name() == "owner::waiting"
    assert await finished == 7
    await asyncio.sleep(0)  # the done callback runs
    assert list(tasks) == [waiting]
    done.set()
    await waiting
    await asyncio.sleep(0)
    assert not tasks and len(tasks) == 0


async def test_cancel_and_wait_cancels_and_awaits_every_task() -> None:
    tasks = TaskSet("owner")
    cleaned: list[int] = []

    async def forever(n: int) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # clean-up that itself awaits
            cleaned.append(n)

    spawned = [tasks.spawn(forever(n), f"owner::{n}") for n in range(3)]
    await asyncio.sleep(0)
    assert await tasks.cancel_and_wait() == set()
    assert sorted(cleaned) == [0, 1, 2]
    assert all(t.cancelled() for t in spawned)
    assert not tasks


async def test_cancel_and_wait_from_one_of_its_own_tasks_spares_the_caller() -> None:
    tasks = TaskSet("owner")
    other = tasks.spawn(asyncio.Event().wait(), "owner::other")

    async def stop_all() -> str:
        await tasks.cancel_and_wait()
        return "finished"

    closer = tasks.spawn(stop_all(), "owner::closer")
    assert await closer == "finished"
    assert other.cancelled()


async def test_grace_lets_tasks_finish_by_themselves_and_cancels_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = TaskSet("owner")
    release = asyncio.Event()
    quick = tasks.spawn(release.wait(), "owner::quick")
    stuck = tasks.spawn(asyncio.Event().wait(), "owner::stuck")
    asyncio.get_running_loop().call_soon(release.set)
    with caplog.at_level(logging.WARNING, "voxloop"):
        await tasks.cancel_and_wait(grace_secs=0.05)
    assert quick.done() and not quick.cancelled()  # finished within the grace
    assert stuck.cancelled()
    assert "owner::stuck still running" in caplog.text
    assert "owner::quick" not in caplog.text


async def test_a_task_that_ignores_cancellation_is_reported_not_waited_for_ever(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = TaskSet("owner")
    let_go = asyncio.Event()

    async def stubborn() -> None:
        while not let_go.is_set():
            try:
                await let_go.wait()
            except asyncio.CancelledError:
                continue  # refuses to stop

    task = tasks.spawn(stubborn(), "owner::stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, "voxloop"):
        pending = await tasks.cancel_and_wait(timeout=0.05)
    assert pending == {task} and not task.done()
    assert "owner::stubborn ignores cancellation" in caplog.text
    let_go.set()
    await task  # the test owns it now, and finishes it


async def test_adopted_task_is_cancelled_with_the_rest() -> None:
    tasks = TaskSet("owner")
    outside = asyncio.create_task(asyncio.Event().wait(), name="started-elsewhere")
    tasks.adopt(outside)
    assert list(tasks) == [outside]
    await tasks.cancel_and_wait()
    assert outside.cancelled()


async def test_wait_does_not_cancel() -> None:
    tasks = TaskSet("owner")
    release = asyncio.Event()
    task = tasks.spawn(release.wait(), "owner::waiting")
    assert await tasks.wait(timeout=0.01) == {task}  # still running, not cancelled
    assert not task.done()
    release.set()
    assert await tasks.wait() == set()
    assert task.done() and not task.cancelled()


async def test_cancel_asks_without_waiting() -> None:
    tasks = TaskSet("owner")
    task = tasks.spawn(asyncio.Event().wait(), "owner::waiting")
    tasks.cancel()
    assert not task.done()  # asked, not yet stopped
    await tasks.wait()
    assert task.cancelled()


async def test_a_failing_task_is_logged_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSet("owner")

    async def fail() -> None:
        raise ValueError("broken")

    with caplog.at_level(logging.ERROR, "voxloop"):
        task = tasks.spawn(fail(), "owner::failing")
        await tasks.wait()
        await asyncio.sleep(0)  # the done callback runs
    assert task.done() and not tasks
    assert "owner::failing failed: ValueError('broken')" in caplog.text
