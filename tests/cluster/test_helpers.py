"""The cluster fixtures leave nothing behind when a start fails half-way."""

from __future__ import annotations

import os
import signal

import pytest

from helpers.cluster import STARTED, RedisProcess, needs_redis, start_all, start_gateway, start_process

pytestmark = needs_redis


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_start_all_stops_what_started_when_another_start_fails(redis_server: RedisProcess) -> None:
    before = set(STARTED)
    with pytest.raises(AssertionError, match="exited"):
        await start_all(
            start_gateway(redis_server.url),
            start_process(["run", "--bot", "no-such-bot"], "http://127.0.0.1:1", "listening on"),
        )
    assert before == STARTED  # the gateway that did start is stopped (and reaped), not left running


async def test_a_redis_server_that_ignores_sigterm_is_killed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    redis = RedisProcess(tmp_path)
    await redis.start()
    assert redis.process is not None
    process = redis.process
    process.send_signal(signal.SIGSTOP)  # a stuck server: SIGTERM alone would never end it
    try:
        await redis.stop(timeout=0.5)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == -signal.SIGKILL and not running(process.pid)
