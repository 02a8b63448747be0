"""The server's session registry: the limit, the one-time tokens, draining, and one lifecycle."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from voxloop.bots import SessionInfo
from voxloop.frames import CancelFrame, EndFrame, ErrorFrame
from voxloop.pipeline import DOWNSTREAM, UPSTREAM, EventSource, Pipeline, PipelineTask
from voxloop.server.sessions import BotStartError, SessionRefused, SessionRegistry
from voxloop.testing import FakeClock, FrameRecorder


class ClientSide(EventSource):
    """The part of a transport the registry uses: the client-left event, and how it closes."""

    def __init__(self) -> None:
        super().__init__()
        self._register_event_handler("on_client_disconnected")
        self.closes: list[str] = []
        self.refusals = 0

    async def leave(self) -> None:
        await self._call_event_handler("on_client_disconnected")

    async def close(self) -> None:
        self.closes.append("closed")
        await self._finish_event_handlers()

    async def refuse(self) -> None:
        self.refusals += 1
        await self._finish_event_handlers()


class Bot:
    """Builds a real pipeline task per session; ``end_at_once`` queues an EndFrame first."""

    def __init__(self, *, end_at_once: bool = False) -> None:
        self.end_at_once = end_at_once
        self.tasks: list[PipelineTask] = []
        self.recorders: list[FrameRecorder] = []
        self._made = asyncio.Condition()
        self.upstream: list[FrameRecorder] = []  # what reached the top of each pipeline

    async def __call__(self, transport: Any, session: SessionInfo) -> PipelineTask:
        recorder = FrameRecorder(DOWNSTREAM)
        upstream = FrameRecorder(UPSTREAM)
        task = PipelineTask(Pipeline([upstream, recorder]))
        if self.end_at_once:
            await task.queue_frame(EndFrame())
        self.tasks.append(task)
        self.recorders.append(recorder)
        self.upstream.append(upstream)
        async with self._made:
            self._made.notify_all()
        return task

    async def started(self, count: int) -> None:
        """Wait until ``count`` sessions' tasks were made and have started."""
        async with self._made:
            await asyncio.wait_for(self._made.wait_for(lambda: len(self.tasks) >= count), 5)
        await asyncio.gather(*(task.wait_until_started() for task in self.tasks[:count]))


def info(n: int = 1) -> SessionInfo:
    return SessionInfo(session_id=f"s{n}", transport="test")


def failing_bot(transport: Any, session: SessionInfo) -> PipelineTask:
    raise RuntimeError("no model here")


def not_a_task_bot(transport: Any, session: SessionInfo) -> Any:
    return "not a task"


# -- the limit and draining ----------------------------------------------------------------------


async def test_the_limit_refuses_new_sessions_until_one_ends(no_leaked_tasks: None) -> None:
    registry, bot = SessionRegistry(limit=2), Bot()
    clients = [ClientSide() for _ in range(2)]
    assert registry.accepting and registry.refusal() is None and registry.empty.is_set()
    sessions = [await registry.start(bot, c, info(i), close=c.close) for i, c in enumerate(clients, start=1)]
    assert len(registry) == 2 and registry.full and not registry.empty.is_set()
    assert not registry.accepting and registry.refusal() == "the server is full; try again later"
    assert "s1" in registry and registry.get("s2") is sessions[1]
    runners = [asyncio.create_task(registry.run(s)) for s in sessions]
    await bot.started(2)
    await clients[0].leave()
    await runners[0]
    assert len(registry) == 1 and registry.accepting and "s1" not in registry
    await clients[1].leave()
    await runners[1]
    assert len(registry) == 0 and registry.empty.is_set()


class SlowBot(Bot):
    """A bot whose factory waits for :attr:`gate` (a model loading, say) before making its task."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = 0
        self.fail = fail
        self._entering = asyncio.Condition()

    async def __call__(self, transport: Any, session: SessionInfo) -> PipelineTask:
        async with self._entering:
            self.entered += 1
            self._entering.notify_all()
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("the model would not load")
        return await super().__call__(transport, session)

    async def wait_entered(self, count: int) -> None:
        async with self._entering:
            await asyncio.wait_for(self._entering.wait_for(lambda: self.entered >= count), 5)


async def test_clients_connecting_at_once_never_push_past_the_limit(no_leaked_tasks: None) -> None:
    limit, extra = 2, 3
    registry, bot = SessionRegistry(limit=limit), SlowBot()
    clients = [ClientSide() for _ in range(limit + extra)]
    starts = [
        asyncio.create_task(registry.start(bot, c, info(i), close=c.close)) for i, c in enumerate(clients)
    ]
    await bot.wait_entered(limit)  # the first ones are being created; the others arrive meanwhile
    bot.gate.set()
    results = await asyncio.gather(*starts, return_exceptions=True)
    refused = [r for r in results if isinstance(r, SessionRefused)]
    sessions = [r for r in results if not isinstance(r, BaseException)]
    assert len(sessions) == limit and len(refused) == extra and len(registry) == limit
    assert bot.entered == limit  # the refused never reached the bot factory
    assert all(str(r) == "the server is full; try again later" for r in refused)
    assert all(c.closes == [] for c in clients)  # refusing is the caller's (it knows its wire)
    for session, client in zip(sessions, clients, strict=False):
        runner = asyncio.create_task(registry.run(session))
        await session.task.wait_until_started()
        await client.leave()
        await runner
    assert len(registry) == 0 and registry.accepting


async def test_a_slot_held_during_creation_is_released_on_failure_and_on_an_early_leave(
    no_leaked_tasks: None,
) -> None:
    registry = SessionRegistry(limit=1)
    failing, client = SlowBot(fail=True), ClientSide()
    start = asyncio.create_task(registry.start(failing, client, info(1), close=client.close))
    await failing.wait_entered(1)
    assert registry.full  # the slot is held while the bot is created
    failing.gate.set()
    with pytest.raises(BotStartError):
        await start
    assert not registry.full and client.closes == ["closed"]
    # The client leaves while its bot is still being created: no session, the slot is free.
    slow, leaver = SlowBot(), ClientSide()
    start = asyncio.create_task(registry.start(slow, leaver, info(2), close=leaver.close))
    await slow.wait_entered(1)
    await leaver.leave()
    slow.gate.set()
    with pytest.raises(BotStartError, match="left"):
        await start
    assert len(registry) == 0 and not registry.full and registry.empty.is_set()
    assert leaver.closes == ["closed"]


async def test_draining_refuses_new_sessions_and_cancel_all_ends_the_running_ones(
    no_leaked_tasks: None,
) -> None:
    registry, bot = SessionRegistry(limit=10), Bot()
    clients = [ClientSide() for _ in range(3)]
    runners = [
        asyncio.create_task(registry.run_session(bot, c, info(i), close=c.close))
        for i, c in enumerate(clients, start=1)
    ]
    await bot.started(3)
    registry.stop_accepting("this worker is draining")
    assert registry.draining and not registry.accepting
    assert registry.refusal() == "this worker is draining; try again later"
    assert len(registry) == 3  # draining alone ends nothing
    registry.cancel_all("worker shutting down")
    await asyncio.wait_for(registry.empty.wait(), 5)
    await asyncio.gather(*runners)
    for recorder in bot.recorders:
        cancel = recorder.frames[-1]
        assert isinstance(cancel, CancelFrame) and cancel.reason == "worker shutting down"
    assert [c.closes for c in clients] == [["closed"]] * 3


async def test_end_all_tells_each_client_why_and_ends_its_session(no_leaked_tasks: None) -> None:
    registry, bot = SessionRegistry(limit=10), Bot()
    clients = [ClientSide() for _ in range(2)]
    runners = [
        asyncio.create_task(registry.run_session(bot, c, info(i), close=c.close))
        for i, c in enumerate(clients, start=1)
    ]
    await bot.started(2)
    await registry.end_all("the server is shutting down")
    await asyncio.wait_for(registry.empty.wait(), 5)
    await asyncio.gather(*runners)
    for upstream in bot.upstream:
        errors = [f for f in upstream.frames if isinstance(f, ErrorFrame)]
        assert [(e.error, e.fatal) for e in errors] == [("the server is shutting down", True)]
    for recorder in bot.recorders:
        assert isinstance(recorder.frames[-1], CancelFrame)  # the fatal error ended it
    assert [c.closes for c in clients] == [["closed"]] * 2


async def test_a_session_created_while_draining_is_cancelled_at_once(no_leaked_tasks: None) -> None:
    registry, bot, client = SessionRegistry(limit=10), Bot(), ClientSide()
    registry.stop_accepting("draining")
    await asyncio.wait_for(registry.run_session(bot, client, info(), close=client.close), 5)
    cancel = bot.recorders[0].frames[-1]
    assert isinstance(cancel, CancelFrame) and cancel.reason == "draining"
    assert len(registry) == 0 and client.closes == ["closed"]


# -- tokens --------------------------------------------------------------------------------------


def test_tokens_are_single_use() -> None:
    registry = SessionRegistry(limit=1, clock=FakeClock())
    first, second = registry.issue_token(60), registry.issue_token(60)
    assert first != second and len(first) >= 24
    assert registry.redeem_token(first)
    assert not registry.redeem_token(first)  # used
    assert registry.redeem_token(second)
    assert not registry.redeem_token(None) and not registry.redeem_token("forged")


async def test_tokens_expire_on_the_registrys_clock() -> None:
    clock = FakeClock()
    registry = SessionRegistry(limit=1, clock=clock)
    early, late = registry.issue_token(60), registry.issue_token(60)
    await clock.advance(59.9)
    assert registry.redeem_token(early)  # just in time
    await clock.advance(0.2)
    assert not registry.redeem_token(late)  # 60.1 s old
    fresh = registry.issue_token(60)  # issuing prunes the expired ones
    assert registry._tokens.keys() == {fresh}


# -- the lifecycle -------------------------------------------------------------------------------


async def test_a_session_that_ends_by_itself_is_unregistered_and_closed(
    no_leaked_tasks: None, caplog: pytest.LogCaptureFixture
) -> None:
    registry, bot, client = SessionRegistry(limit=5), Bot(end_at_once=True), ClientSide()
    caplog.set_level(logging.INFO, logger="voxloop.server")
    await asyncio.wait_for(registry.run_session(bot, client, info(7), close=client.close), 5)
    assert bot.tasks[0].has_finished() and isinstance(bot.recorders[0].frames[-1], EndFrame)
    assert len(registry) == 0 and registry.empty.is_set()
    assert client.closes == ["closed"] and client.refusals == 0
    messages = [r.getMessage() for r in caplog.records]
    assert "session s7 started over test (1 running)" in messages
    assert "session s7 ended (0 running)" in messages


@pytest.mark.parametrize("bot", [failing_bot, not_a_task_bot])
async def test_a_bot_that_cannot_start_refuses_the_client_and_registers_nothing(
    bot: Any, no_leaked_tasks: None, caplog: pytest.LogCaptureFixture
) -> None:
    registry, client = SessionRegistry(limit=5), ClientSide()
    with pytest.raises(BotStartError, match="could not start"):
        await registry.start(bot, client, info(), close=client.close, refuse=client.refuse)
    assert client.refusals == 1 and client.closes == []
    assert len(registry) == 0 and registry.empty.is_set()
    assert any("the bot could not be created" in r.getMessage() for r in caplog.records)
    # run_session ends quietly on the same path; without `refuse`, `close` ends the transport.
    await registry.run_session(bot, client, info(2), close=client.close)
    assert client.closes == ["closed"] and len(registry) == 0


async def test_the_client_leaving_cancels_the_session_and_closes_the_transport(
    no_leaked_tasks: None,
) -> None:
    registry, bot, client = SessionRegistry(limit=5), Bot(), ClientSide()
    runner = asyncio.create_task(registry.run_session(bot, client, info(), close=client.close))
    await bot.started(1)
    assert len(registry) == 1 and not runner.done()
    await client.leave()
    await asyncio.wait_for(runner, 5)
    cancel = bot.recorders[0].frames[-1]
    assert isinstance(cancel, CancelFrame) and cancel.reason == "client disconnected"
    assert len(registry) == 0 and client.closes == ["closed"]


async def test_a_transport_that_fails_to_close_still_leaves_the_registry_clean(
    no_leaked_tasks: None,
) -> None:
    registry, bot, client = SessionRegistry(limit=5), Bot(end_at_once=True), ClientSide()

    async def broken_close() -> None:
        raise OSError("socket already gone")

    await asyncio.wait_for(registry.run_session(bot, client, info(), close=broken_close), 5)
    assert len(registry) == 0 and registry.empty.is_set()
