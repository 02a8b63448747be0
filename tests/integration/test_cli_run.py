"""`voxloop run` as a user starts it: a real process, stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import os

import httpx

from helpers.cli import free_port, interrupt, voxloop_exit, voxloop_process
from voxloop.testing import RTVIClient


async def test_ctrl_c_ends_every_session_and_exits() -> None:
    port = free_port()
    async with voxloop_process(
        "run", "--port", str(port), "--bot", "echo", "--transport", "websocket"
    ) as process:
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
        code = await interrupt(process)
        for client in clients:
            await asyncio.wait_for(client.closed.wait(), 5)
            await client.close()
    assert code == 0, (await process.stderr.read()).decode() if process.stderr else ""


async def test_unknown_bot_is_a_clear_error() -> None:
    code, err = await voxloop_exit("run", "--bot", "nonexistent")
    assert code == 2
    assert "unknown bot 'nonexistent'" in err


async def test_the_default_bot_loads_its_models_first_and_leaves_no_worker_behind() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    lines: list[str] = []
    async with voxloop_process(
        "run", "--port", str(port), "--transport", "websocket", env={**env, "VOXLOOP_TTS": "espeak"}
    ) as process:
        assert process.stdout is not None
        while not lines or "listening on" not in lines[-1]:
            lines.append((await asyncio.wait_for(process.stdout.readline(), 60)).decode())
        # Progress first, then the banner once the models are in, then the server.
        assert "loading models" in lines[0]
        assert any("Whisper tiny.en ready" in line for line in lines)
        assert any("espeak voice ready" in line for line in lines)
        assert any("offline demo agent" in line for line in lines)
        assert "bot 'default'" in lines[-2]
        workers = _speech_workers_of(process.pid)
        assert len(workers) == 1, workers  # one espeak worker, shared by every session
        code = await interrupt(process)
    assert code == 0, (await process.stderr.read()).decode() if process.stderr else ""
    assert not any(_alive(pid) for pid in workers), "the speech worker outlived the server"


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _speech_workers_of(parent: int) -> list[int]:
    """PIDs of the speech worker processes started by ``parent``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except OSError:
            continue
        if ppid == parent and b"_speech_worker" in command:
            found.append(int(entry))
    return found
