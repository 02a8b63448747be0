"""The cluster's command lines: clear errors for what cannot work, and a worker that waits for Redis."""

from __future__ import annotations

import pytest

from helpers.cli import voxloop_exit
from helpers.cluster import RedisProcess, free_port, needs_redis, start_process, stop_process

pytestmark = needs_redis


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--cluster", "redis://127.0.0.1:1/0", "--host", "0.0.0.0"], "needs --advertise-url"),
        (
            ["run", "--cluster", "redis://127.0.0.1:1/0", "--advertise-url", "10.0.0.5:7860"],
            "must be http://",
        ),
        (["run", "--drain-timeout", "soon"], "invalid float value"),
        (["gateway"], "--cluster redis://HOST:PORT/DB (or VOXLOOP_CLUSTER_URL) is required"),
        (["cluster", "status"], "is required"),
        (["cluster", "status", "--cluster", "redis://127.0.0.1:1/0"], "is unreachable"),
    ],
)
async def test_what_cannot_work_is_a_clear_error(args: list[str], message: str) -> None:
    code, err = await voxloop_exit(*args)
    assert code in (1, 2) and message in err, err


async def test_a_worker_started_before_redis_says_so_and_registers_when_it_comes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    redis = RedisProcess(tmp_path)
    port = free_port()
    args = ["run", "--bot", "echo", "--port", str(port), "--transport", "websocket", "--cluster", redis.url]
    worker = await start_process(args, f"http://127.0.0.1:{port}", "listening on")
    try:
        await worker.wait_for_line("is unreachable")
        await redis.start()
        await worker.wait_for_line("registered in the cluster", timeout=15)
    finally:
        await stop_process(worker)
        await redis.stop()
