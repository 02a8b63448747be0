"""A real cluster on loopback for tests: Debian's redis-server, `voxloop run` workers, `voxloop gateway`s.

Every process is started as a user starts it and waited for on what it prints (no sleeps);
:func:`wait_until` polls a condition that has no event to wait on (a TTL running out in Redis).

Nothing is left behind, whatever fails: every process started here is listed in :data:`STARTED`
(tests/cluster/conftest.py kills what a test left running), dies with the test process
(``PR_SET_PDEATHSIG``, Linux), and :func:`start_all` stops the ones that did start when another fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.cli import free_port as free_port  # the cluster tests take it from here

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

#: Every cluster test module: ``pytestmark = needs_redis``.
needs_redis = pytest.mark.skipif(
    not Path(REDIS_SERVER).exists(), reason="needs redis-server (make cluster-deps)"
)


#: Every process started here and not yet reaped (voxloop processes and redis-servers).
STARTED: set[asyncio.subprocess.Process] = set()

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when the test process dies (even by SIGKILL)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


async def _spawn(*argv: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    STARTED.add(process)
    return process


def kill_left_behind(processes: set[asyncio.subprocess.Process]) -> int:
    """SIGKILL each of ``processes`` still running (from any event loop); how many there were."""
    left = 0
    for process in processes:
        STARTED.discard(process)
        with contextlib.suppress(ProcessLookupError):
            if process.returncode is None:
                process.kill()  # its loop's child watcher reaps it
                left += 1
    return left


class RedisProcess:
    """A throw-away redis-server: no persistence, its own port and directory; stop() and start() again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await _spawn(
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        )
        try:
            await read_until(self.process, "Ready to accept connections", timeout=20)
        except BaseException:
            await self.stop()
            raise

    async def stop(self, timeout: float = 10) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                process.kill()
        await process.wait()
        STARTED.discard(process)


@dataclass
class Proc:
    """A voxloop process and every line it has printed so far."""

    process: asyncio.subprocess.Process
    url: str
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False

    async def wait_for_line(self, text: str, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not any(text in line for line in self.lines):
                if self.ended:
                    raise AssertionError(f"the process exited: {''.join(self.lines)}")
                self.changed.clear()
                await self.changed.wait()


async def read_until(process: asyncio.subprocess.Process, text: str, timeout: float) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while not lines or text not in lines[-1]:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"exited before {text!r}: {''.join(lines)}")
            lines.append(line)
    return lines


async def _keep_reading(proc: Proc) -> None:
    assert proc.process.stdout is not None
    while line := await proc.process.stdout.readline():
        proc.lines.append(line.decode())
        proc.changed.set()
    proc.ended = True
    proc.changed.set()


async def start_process(args: list[str], url: str, ready_text: str) -> Proc:
    process = await _spawn(sys.executable, "-m", "voxloop.cli", *args)
    proc = Proc(process, url)
    proc.reader = asyncio.create_task(_keep_reading(proc), name="voxloop-process-reader")
    try:
        await proc.wait_for_line(ready_text, timeout=60)
    except BaseException:
        await stop_process(proc, signal.SIGKILL)
        raise
    return proc


async def start_worker(
    redis_url: str, *, capacity: int = 25, transport: str = "all", drain: float = 30
) -> Proc:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["run", "--bot", "echo", "--port", str(port), "--transport", transport, "--cluster", redis_url]
    args += ["--max-sessions", str(capacity), "--drain-timeout", str(drain)]
    proc = await start_process(args, url, "registered in the cluster")
    await proc.wait_for_line("listening on")
    return proc


async def start_single(*, transport: str = "websocket") -> Proc:
    """A plain ``voxloop run`` with the echo bot, outside any cluster: what a gateway is compared with."""
    port = free_port()
    args = ["run", "--bot", "echo", "--port", str(port), "--transport", transport, "--max-sessions", "1000"]
    return await start_process(args, f"http://127.0.0.1:{port}", "listening on")


async def start_gateway(redis_url: str, *extra: str) -> Proc:
    port = free_port()
    args = ["gateway", "--port", str(port), "--cluster", redis_url, *extra]
    return await start_process(args, f"http://127.0.0.1:{port}", "gateway listening")


async def stop_process(proc: Proc, sig: int = signal.SIGINT, timeout: float = 20) -> int:
    if proc.process.returncode is None:
        proc.process.send_signal(sig)
    try:
        code = await asyncio.wait_for(proc.process.wait(), timeout)
    except TimeoutError:
        proc.process.kill()
        code = await proc.process.wait()
    if proc.reader is not None:
        await proc.reader
    STARTED.discard(proc.process)
    return code


async def start_all(*starts: Awaitable[Proc]) -> list[Proc]:
    """Start processes concurrently; if one fails, stop the others that started, then raise."""
    results = await asyncio.gather(*starts, return_exceptions=True)
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if failure is None:
        return [r for r in results if isinstance(r, Proc)]
    for result in results:
        if isinstance(result, Proc):
            await stop_process(result, signal.SIGKILL)
    raise failure


@contextlib.asynccontextmanager
async def running(*procs: Proc) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for proc in procs:
            await stop_process(proc)


async def wait_until(condition: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy (for TTLs expiring inside Redis)."""
    deadline = time.monotonic() + timeout
    while True:
        if result := await condition():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def cluster_status(gateway: str) -> dict[str, Any]:
    async with httpx.AsyncClient(trust_env=False) as http:
        reply = await http.get(f"{gateway}/status")
    reply.raise_for_status()
    result: dict[str, Any] = reply.json()
    return result
