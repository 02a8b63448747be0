"""`voxloop run` as a user starts it: a real process, stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import httpx

from voxloop.testing import RTVIClient


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_ctrl_c_ends_every_session_and_exits() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxloop.cli",
        "run",
        "--port",
        str(port),
        "--bot",
        "echo",
        "--transport",
        "websocket",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        banner = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b"bot 'echo'" in banner
        listening = await asyncio.wait_for(process.stdout.readline(), 30)
        assert f"listening on http://127.0.0.1:{port}".encode() in listening
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            start = (await http.post(f"{base}/start", json={"transport": "websocket"})).json()
        clients = [RTVIClient(start["wsUrl"]) for _ in range(3)]
        for client in clients:
            await client.connect()
            await client.ready()
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 15)
        for client in clients:
            await asyncio.wait_for(client.closed.wait(), 5)
            await client.close()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, (await process.stderr.read()).decode() if process.stderr else ""


async def test_unknown_bot_is_a_clear_error() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxloop.cli",
        "run",
        "--bot",
        "nonexistent",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"unknown bot 'nonexistent'" in err
