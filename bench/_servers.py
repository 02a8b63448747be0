"""The servers the density benchmarks start and sample: one process, or a cluster behind a gateway.

:class:`Server` is one server process, sampled through ``/proc``. :class:`ClusterServer` is a
throw-away ``redis-server``, W ``voxloop run --cluster`` workers and one ``voxloop gateway``,
looked at as one server: clients ``POST /start`` to the gateway and stream to the worker it
booked; CPU and memory are the sum of the workers' and the gateway's.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    """GET (or POST ``body``) on loopback, never through a proxy from the environment."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=timeout) as reply:
        return json.loads(reply.read())


@dataclass
class Server:
    """One server process: started, sampled through /proc, and stopped by its own pid."""

    impl: str
    argv: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait (bounded) until ``/status`` answers; the peer takes seconds to import."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=log, stderr=log)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        """Until the started server answers ``/status`` (bounded; its exit is an error)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.impl} server exited ({self.proc.returncode}); see {self.log}")
            try:
                http_json(f"{self.base}/status", timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.impl} server not ready within {timeout} s; see {self.log}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            _terminate(proc)

    def sample(self) -> tuple[int, int]:
        """(CPU ticks used so far, resident KiB)."""
        assert self.proc is not None
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        return int(stat[11]) + int(stat[12]), int(rss[1]) if rss else 0  # utime + stime

    def log_problems(self) -> int:
        """Warning, error and traceback lines in the server's log (there should be none)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return len(re.findall(r"WARNING|ERROR|Traceback", text))


@dataclass(frozen=True)
class ClusterOf:
    """``workers`` ``voxloop run`` processes behind one gateway, on one Redis (see :class:`ClusterServer`)."""

    workers: int

    def server(self, impl: str, n: int, logdir: Path, voxloop: list[str]) -> ClusterServer:
        """``voxloop``: how to run the ``voxloop`` command."""
        return ClusterServer(impl, self.workers, logdir / f"{impl}-{n}-{free_port()}", voxloop)


@dataclass
class ClusterServer:
    """A cluster started afresh and stopped as one; its ``base`` is the gateway."""

    impl: str
    workers: int
    logdir: Path
    voxloop: list[str]
    parts: list[Server] = field(default_factory=list)
    redis: subprocess.Popen[bytes] | None = None
    gateway: Server | None = None

    @property
    def base(self) -> str:
        assert self.gateway is not None
        return self.gateway.base

    def start(self, timeout: float = 60.0) -> None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise SystemExit("the cluster mode needs redis-server (make cluster-deps)")
        self.logdir.mkdir(parents=True, exist_ok=True)
        redis_port = free_port()
        argv = [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.logdir)]
        with (self.logdir / "redis.log").open("ab") as log:
            self.redis = subprocess.Popen(argv, stdout=log, stderr=log)
        url = f"redis://127.0.0.1:{redis_port}/0"
        try:
            _wait_for_port(redis_port, timeout)
            for _ in range(self.workers):
                port = free_port()
                argv = [
                    *self.voxloop,
                    "run",
                    "--bot",
                    "echo",
                    "--port",
                    str(port),
                    "--transport",
                    "websocket",
                ]
                argv += ["--max-sessions", "1000", "--cluster", url]
                worker = Server(self.impl, argv, port, self._log(port))
                self.parts.append(worker)
                worker.start(timeout)
            port = free_port()
            argv = [
                *self.voxloop,
                "gateway",
                "--port",
                str(port),
                "--cluster",
                url,
                "--transport",
                "websocket",
            ]
            self.gateway = Server(self.impl, argv, port, self._log(port))
            self.parts.append(self.gateway)
            self.gateway.start(timeout)
            deadline = time.monotonic() + timeout
            while http_json(f"{self.base}/status").get("ready") != self.workers:  # every heartbeat in
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.workers} worker(s) not registered within {timeout} s")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def _log(self, port: int) -> Path:
        return self.logdir / f"{port}.log"

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()
        self.parts, self.gateway = [], None
        redis, self.redis = self.redis, None
        if redis is not None:
            _terminate(redis)

    def sample(self) -> tuple[int, int]:
        """(CPU ticks, resident KiB) of the workers and the gateway together."""
        ticks, rss = zip(*(part.sample() for part in self.parts), strict=True)
        return sum(ticks), sum(rss)

    def log_problems(self) -> int:
        return sum(part.log_problems() for part in self.parts)


def _terminate(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM a process still running, and SIGKILL it if it has not ended 10 s later."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port} after {timeout} s") from None
            time.sleep(0.05)
