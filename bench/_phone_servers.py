"""The servers ``bench/telephony.py`` measures: voxloop's and the peer's, echo or default bot, pinned.

Each is its own process (``bench/_servers.Server``), started with ``taskset -c SERVER_CPU`` when
pinning; CPU is read from ``/proc`` for the server and its direct children (the speech worker).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

from _servers import Server, free_port
from voice import SPEECH_WORKER, Events, peer_voice_python

ROOT = Path(__file__).resolve().parents[1]
SERVER_CPU = "1"  # the core the servers run on; the load generator takes CPU 0


def voxloop_command() -> list[str]:
    script = Path(sys.executable).with_name("voxloop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "voxloop.cli"]


def start_server(
    impl: str, bot: str, tmp: Path, pin: bool, wait: bool = True
) -> tuple[Server, Events | None]:
    """The server of ``impl`` for ``bot``, started (and ready, unless not ``wait``: then
    :func:`wait_ready`), with its probe events for the default bot."""
    port = free_port()
    events_path = tmp / f"events-{impl.split()[0]}-{bot}.jsonl"
    events_path.touch()
    if impl == "voxloop" and bot == "echo":
        argv = [*voxloop_command(), "run", "--bot", "echo", "--transport", "twilio", "--no-verify-webhooks"]
        argv += ["--port", str(port), "--max-sessions", "500"]
    elif impl == "voxloop":
        argv = [sys.executable, str(ROOT / "bench" / "_voice_server.py"), "--twilio"]
        argv += ["--port", str(port), "--events", str(events_path)]
    else:
        argv = [str(peer_voice_python()), str(ROOT / "bench" / "peer" / "twilio_server.py"), "--bot", bot]
        argv += ["--port", str(port)]
        if bot == "default":
            argv += ["--events", str(events_path), "--speech-python", sys.executable]
            argv += ["--speech-worker", str(SPEECH_WORKER)]
    if pin:
        argv = ["taskset", "-c", SERVER_CPU, *argv]
    server = Server(impl, argv, port, tmp / f"server-{impl.split()[0]}-{bot}.log")
    if wait:
        server.start(timeout=180)
    else:
        with server.log.open("ab") as log:
            server.proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=log)
    return server, Events(events_path) if bot == "default" else None


def wait_ready(server: Server, timeout: float = 180.0) -> None:
    """Until a server started with ``wait=False`` answers ``/status``."""
    server.wait_ready(timeout)


def tree_ticks(pid: int) -> int:
    """CPU ticks (utime + stime) of ``pid`` and its direct children (the speech worker)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def server_pid(server: Server) -> int:
    assert server.proc is not None
    return server.proc.pid


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    return next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), ""
    )
