"""`voxloop` started as a user starts it, in a real process, for the tests of the command line."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager


def free_port() -> int:
    """A loopback port nothing listens on (for a process that binds it itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def voxloop_process(
    *args: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m voxloop.cli *args`` with stdout and stderr piped; killed if still running on exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxloop.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def interrupt(process: asyncio.subprocess.Process, timeout: float = 15) -> int:
    """Ctrl-C: SIGINT, then the exit code once the process has ended."""
    process.send_signal(signal.SIGINT)
    return await asyncio.wait_for(process.wait(), timeout)


async def voxloop_exit(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 30
) -> tuple[int, str]:
    """Runs ``voxloop *args`` to its end: (exit code, what it wrote on stderr)."""
    async with voxloop_process(*args, env=env) as process:
        _out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, err.decode()
