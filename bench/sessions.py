"""Concurrent echo sessions over WebSocket with real-time audio, voxloop and the peer side by side.

    python bench/sessions.py             # search both servers' limits, then measure at a common N
    python bench/sessions.py --smoke     # voxloop only, 2 sessions of 2 s (CI, well under 30 s)
    python bench/sessions.py --no-peer   # voxloop only, full run
    python bench/sessions.py --cluster 1,2   # through a gateway: 1 worker, then 2 (the sum of theirs?)

Each server is its own process on 127.0.0.1 (voxloop: ``voxloop run --bot echo``; the peer:
``bench/peer/echo_server.py`` in the peer's virtual environment), started afresh for every run so
one run's memory does not leak into the next. This process is the load generator: N
``RTVIClient`` sessions (the published web client's wire) join at 20 per second, send
``client-ready``, then stream a speech WAV, looped, in real time in 16 ms frames as a browser
microphone does, while the echo comes back at 24 kHz. Sessions that join earlier talk longer, so
all N stream together for D seconds.

Per session (``analyse``):

* lateness: arrival time of each echoed chunk minus the time a player that started with the
  first chunk, and has played at 24 kHz without pause since, needs it. It stays near zero while
  a server keeps real time and grows once it falls behind.
* underruns: how often that player, resuming whenever data arrives, runs dry after its first
  second. A live echo can never run ahead, so with no jitter buffer any scheduling delay is a
  glitch; underruns are reported, not used to pass or fail.
* received: echoed bytes over the bytes sent (scaled to 24 kHz).

A server *sustains* N sessions when all N get ``bot-ready`` and, in every session, p99 lateness
is at most 100 ms and at least 95 % of the audio came back. The search steps N up (5, 10, 20,
...) with a short D until a step fails twice, then bisects; the full D then runs at N=1 and at
the largest N both sustained. Server CPU (``/proc/<pid>/stat``) is taken while all N stream,
server RSS (``/proc/<pid>/status``) against the idle server after a warm-up session. The load
generator's CPU, how late it sent its frames, and the CPU the rest of the machine used are
reported too, so a run the load generator or a neighbour spoiled can be told apart.

``--cluster W1,W2,...`` measures a cluster instead (and no peer): for each W, a fresh
``redis-server``, W ``voxloop run --cluster`` workers and a ``voxloop gateway``; every session
``POST``s ``/start`` to the gateway and streams to the worker it booked. The same search finds the
N each cluster sustains (server CPU and memory: the workers' and the gateway's together); the
ratio of the largest W's N to the smallest's says how far capacity adds up. It only can on a
machine with cores to spare for each worker and for the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _peer_env import peer_python
from _servers import ClusterOf, ClusterServer, Server, free_port, http_json
from voxloop import __version__
from voxloop.testing.rtvi_client import RTVIClient, load_wav

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WAV = ROOT.parent / "shared" / "testdata" / "audio" / "utt01_weather.wav"
OUT_BYTES_PER_S = 24000 * 2  # the echo: 24 kHz mono PCM16
FRAME_BYTES = 512  # what the web client sends: 16 ms of 16 kHz mono PCM16
FRAME_S = 0.016
JOIN_GAP_S = 0.05  # sessions join at 20 per second
LATE_LIMIT_MS = 100.0
MIN_RECEIVED = 0.95
SETTLE_S = 1.0  # underruns in a session's first second are start-up, not load
CLIENT_BOUND_CPU = 90.0  # % of one core: past this the load generator is what is measured
STEPS = (5, 10, 20, 40, 80, 160, 320)
CLK_TCK = os.sysconf("SC_CLK_TCK")

#: How to start a server under test: port -> its command line, or a cluster of workers behind a gateway.
ArgvFor = Callable[[int], list[str]] | ClusterOf


# -- the servers under test -------------------------------------------------------------------


def voxloop_command() -> list[str]:
    script = Path(sys.executable).with_name("voxloop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "voxloop.cli"]


def voxloop_argv(port: int) -> list[str]:
    return [*voxloop_command(), "run", "--bot", "echo", "--port", str(port), "--max-sessions", "1000"]


def peer_server_python() -> Path:
    """The peer venv's python, with the WebSocket extras ``echo_server.py`` needs.

    ``_peer_env`` reuses any venv that imports pipecat, so one built before the extras were added
    to ``bench/peer/requirements.txt`` is topped up here, once.
    """
    python = peer_python(ROOT)
    probe = subprocess.run([str(python), "-c", "import fastapi, uvicorn"], capture_output=True, timeout=120)
    if probe.returncode != 0:
        print("[sessions] installing the peer's websocket extras", file=sys.stderr, flush=True)
        requirements = ROOT / "bench" / "peer" / "requirements.txt"
        pip = [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)]
        subprocess.run(pip, check=True, stdout=sys.stderr, timeout=900)
    return python


def machine_busy_ticks() -> int:
    """CPU ticks the whole machine has been busy (every process, every core) since boot."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return user + nice + system + irq + softirq + steal


# -- one session --------------------------------------------------------------------------------


class TimedClient(RTVIClient):
    """Notes when each audio frame left, so a late load generator is not blamed on the server."""

    def __init__(self, url: str, token: str | None = None) -> None:
        super().__init__(url, token=token)
        self.recording = False
        self.sent: list[float] = []

    async def send_raw(self, data: bytes | str) -> None:
        if self.recording:
            self.sent.append(time.monotonic())
        await super().send_raw(data)


@dataclass
class Session:
    error: str | None = None
    started: float = 0.0
    ended: float = 0.0
    sent_bytes: int = 0
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)


async def run_session(base: str, pcm: bytes, rate: int, delay: float) -> Session:
    """One user: wait its turn, POST /start, connect, client-ready, talk, wait for the echo."""
    session = Session()
    client: TimedClient | None = None
    try:
        async with asyncio.timeout(delay + len(pcm) / (2 * rate) + 60):
            await asyncio.sleep(delay)  # the staggered join
            reply = await asyncio.to_thread(http_json, f"{base}/start", {"transport": "websocket"})
            client = TimedClient(str(reply["wsUrl"]), token=reply.get("token"))  # a gateway's booking
            await client.connect()
            await client.ready(timeout=30)
            client.recording = True
            session.started = time.monotonic()
            await client.stream_audio(pcm, sample_rate=rate)
            session.ended = time.monotonic()
            session.sent_bytes = len(pcm)
            expected = len(pcm) * OUT_BYTES_PER_S // (2 * rate)
            try:  # up to 50 ms may stay behind in a server's chunk buffer
                await client.wait_for_audio(expected - OUT_BYTES_PER_S // 20, timeout=3)
            except (TimeoutError, ConnectionError):
                pass
    except Exception as exc:  # a failed session is a result, not a crash of the benchmark
        session.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        if client is not None:
            await client.close()
            session.arrivals, session.sent = client.audio_arrivals, client.sent
    return session


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, -int(-q * len(ordered) // 100))) - 1]


def analyse(session: Session, rate: int) -> dict[str, Any]:
    """Lateness, underruns and received share (see the module docstring), plus diagnostics."""
    arrivals, sent = session.arrivals, session.sent
    late: list[float] = []
    delay: list[float] = []
    underruns, gap, played = 0, 0.0, 0  # played: bytes before this chunk
    first = arrivals[0][0] if arrivals else 0.0
    play_end = first  # when the resuming player runs out of what it has
    for t, n in arrivals:
        late.append((t - first - played / OUT_BYTES_PER_S) * 1000)
        if t > play_end:
            if played and t - first >= SETTLE_S:
                underruns += 1
                gap += t - play_end
            play_end = t
        play_end += n / OUT_BYTES_PER_S
        played += n
        # Echo delay: arrival minus when the mic frame holding this chunk's last sample left, so
        # it leaves out how late the load generator sent (a diagnostic, not the criterion).
        if sent:
            last_sample = played * rate // OUT_BYTES_PER_S - 1
            delay.append((t - sent[min(len(sent) - 1, max(0, last_sample // (FRAME_BYTES // 2)))]) * 1000)
    end = arrivals[-1][0] if arrivals else 0.0
    expected = session.sent_bytes * OUT_BYTES_PER_S / (2 * rate)
    return {
        "received": played / expected if expected else 0.0,
        "late": late,
        "late_p99_ms": percentile(late, 99),
        "end_late_ms": statistics.median(x for x, (t, _) in zip(late, arrivals, strict=True) if t > end - 1)
        if arrivals
        else 0.0,
        "underruns": underruns,
        "gap_ms": gap * 1000,
        "first_audio_ms": (first - session.started) * 1000 if arrivals else None,
        "chunk_ms": statistics.median(n for _, n in arrivals) * 1000 / OUT_BYTES_PER_S if arrivals else 0.0,
        "send_lag": [(t - sent[0] - i * FRAME_S) * 1000 for i, t in enumerate(sent)],
        "delay": delay,
        "seconds": session.ended - session.started,
    }


# -- one run ------------------------------------------------------------------------------------


async def load(server: Server, pcms: list[bytes], rate: int) -> dict[str, Any]:
    """Run one session per PCM against a running server; sample CPU and memory meanwhile."""
    # (time, server ticks, server KiB, our CPU seconds, machine busy ticks)
    samples: list[tuple[float, int, int, float, int]] = []

    async def sample_until_cancelled() -> None:
        while True:
            samples.append((time.monotonic(), *server.sample(), time.process_time(), machine_busy_ticks()))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample_until_cancelled())
    try:  # every session bounds itself, so this gather ends
        sessions = await asyncio.gather(
            *(run_session(server.base, pcm, rate, i * JOIN_GAP_S) for i, pcm in enumerate(pcms))
        )
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    ok = [s for s in sessions if s.error is None]
    # The steady window: everyone streaming, nobody finished yet.
    window = (max(s.started for s in ok) + 0.5, min(s.ended for s in ok)) if ok else (0.0, 0.0)
    inside = [s for s in samples if window[0] <= s[0] <= window[1]]
    if len(inside) < 2:  # too short to have a steady part: use the whole run
        inside = samples
    first, last = inside[0], inside[-1]
    per_core = 100 / (last[0] - first[0]) if last[0] > first[0] else 0.0  # CPU s -> % of a core
    server_cpu = (last[1] - first[1]) / CLK_TCK * per_core
    client_cpu = (last[3] - first[3]) * per_core
    machine_cpu = (last[4] - first[4]) / CLK_TCK * per_core
    return {
        "sessions": sessions,
        "server_cpu_pct": server_cpu,
        "server_rss_kib": max(s[2] for s in inside),
        "client_cpu_pct": client_cpu,
        "other_cpu_pct": max(0.0, machine_cpu - server_cpu - client_cpu),
        "window_s": last[0] - first[0],
    }


def measure(impl: str, argv_for: ArgvFor, n: int, duration: float, wav: Path, logdir: Path) -> dict[str, Any]:
    """One run: a fresh server, one warm-up session, idle RSS, then N sessions overlapping D s."""
    pcm, rate, channels = load_wav(wav)
    if channels != 1:
        raise SystemExit(f"{wav}: the microphone sends mono")

    def talk(seconds: float) -> bytes:  # the WAV looped to a whole number of mic frames
        size = round(seconds / FRAME_S) * FRAME_BYTES
        return (pcm * (size // len(pcm) + 1))[:size]

    if isinstance(argv_for, ClusterOf):
        server: Server | ClusterServer = argv_for.server(impl, n, logdir, voxloop_command())
    else:
        port = free_port()
        server = Server(impl, argv_for(port), port, logdir / f"{impl}-{n}-{port}.log")
    try:
        server.start()
        # Warm-up: lazy imports and first-use allocations belong to the idle server, not to N.
        asyncio.run(load(server, [talk(1.0)], rate))
        time.sleep(0.5)
        idle_rss = server.sample()[1]
        result = asyncio.run(
            load(server, [talk(duration + (n - 1 - i) * JOIN_GAP_S) for i in range(n)], rate)
        )
    finally:
        server.stop()
    return summarise(impl, n, duration, result, idle_rss, server.log_problems(), rate)


def summarise(
    impl: str, n: int, duration: float, result: dict[str, Any], idle_rss: int, problems: int, rate: int
) -> dict[str, Any]:
    sessions: list[Session] = result["sessions"]
    errors = [s.error for s in sessions if s.error is not None]
    stats = [analyse(s, rate) for s in sessions if s.error is None]

    def pooled(key: str) -> list[float]:
        return [x for s in stats for x in s[key]]

    def worst(key: str) -> float:
        return max((s[key] for s in stats), default=0.0)

    late, minutes = pooled("late"), sum(s["seconds"] for s in stats) / 60
    received = min((s["received"] for s in stats), default=0.0)
    first_audio = [s["first_audio_ms"] for s in stats if s["first_audio_ms"] is not None]
    return {
        "impl": impl,
        "sessions": n,
        "duration_s": duration,
        "sustained": not errors and worst("late_p99_ms") <= LATE_LIMIT_MS and received >= MIN_RECEIVED,
        "client_bound": result["client_cpu_pct"] >= CLIENT_BOUND_CPU,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "received_min": round(received, 4),
        "late_p50_ms": round(percentile(late, 50), 1),
        "late_p99_ms": round(percentile(late, 99), 1),
        "late_max_ms": round(max(late, default=0.0), 1),
        "worst_session_p99_ms": round(worst("late_p99_ms"), 1),
        "worst_end_late_ms": round(worst("end_late_ms"), 1),
        "underruns_per_min": round(sum(s["underruns"] for s in stats) / minutes, 1) if minutes else 0.0,
        "underrun_gap_pct": round(sum(s["gap_ms"] for s in stats) / 600 / minutes, 2) if minutes else 0.0,
        "first_audio_p50_ms": round(statistics.median(first_audio), 1) if first_audio else None,
        "chunk_ms_p50": round(statistics.median(s["chunk_ms"] for s in stats), 1) if stats else 0.0,
        "echo_delay_p50_ms": round(percentile(pooled("delay"), 50), 1),
        "echo_delay_p99_ms": round(percentile(pooled("delay"), 99), 1),
        "send_lag_p99_ms": round(percentile(pooled("send_lag"), 99), 1),
        "server_cpu_pct": round(result["server_cpu_pct"], 1),
        "cpu_pct_per_session": round(result["server_cpu_pct"] / n, 2),
        "idle_rss_kib": idle_rss,
        "rss_kib": result["server_rss_kib"],
        "rss_kib_per_session": round((result["server_rss_kib"] - idle_rss) / n, 1),
        "client_cpu_pct": round(result["client_cpu_pct"], 1),
        "other_cpu_pct": round(result["other_cpu_pct"], 1),
        "window_s": round(result["window_s"], 1),
        "server_log_problems": problems,
    }


# -- the search and the report ------------------------------------------------------------------


def search(
    impl: str, argv_for: ArgvFor, args: argparse.Namespace, logdir: Path, deadline: float
) -> tuple[int, str, list[dict[str, Any]]]:
    """Largest N sustained: step N up until a step fails, then bisect ``--refine`` times.

    A failed step is run once more and counts only if it fails again: one noisy moment on a
    shared machine should not end the search. The search also stops once the load generator
    itself runs out of CPU. Bounded by the steps, the refine count and the deadline. Returns
    (max N, why the search stopped, every run's figures).
    """
    runs: list[dict[str, Any]] = []

    def attempt(n: int) -> dict[str, Any]:
        for _ in range(2):
            runs.append(show(measure(impl, argv_for, n, args.search_duration, args.wav, logdir)))
            if runs[-1]["sustained"] or runs[-1]["client_bound"] or time.monotonic() > deadline:
                break
        return runs[-1]

    best, failed, reason = 0, 0, "every step sustained"
    for n in args.steps:
        if time.monotonic() > deadline:
            reason = "time budget spent"
            break
        row = attempt(n)
        if not row["sustained"]:
            failed = n
            break
        best = n
        if row["client_bound"]:  # a larger N would measure the load generator, not the server
            reason = f"load generator saturated at N={n}; the server may sustain more"
            break
    for _ in range(args.refine if failed else 0):
        n = (best + failed) // 2
        if n <= best or time.monotonic() > deadline:
            break
        if attempt(n)["sustained"]:
            best = n
        else:
            failed = n
    if failed:
        bound = any(r["sessions"] == failed and r["client_bound"] for r in runs)
        reason = f"fell behind at N={failed}" + (" (the load generator was saturated too)" if bound else "")
    return best, reason, runs


COLUMNS = (  # (key, heading, width) of the table
    ("impl", "impl", 8),
    ("sessions", "N", 4),
    ("duration_s", "D s", 5),
    ("sustained", "ok", 3),
    ("received_min", "recv", 6),
    ("late_p50_ms", "p50 ms", 7),
    ("late_p99_ms", "p99 ms", 7),
    ("worst_session_p99_ms", "worst99", 8),
    ("underruns_per_min", "urun/min", 9),
    ("first_audio_p50_ms", "1st ms", 7),
    ("chunk_ms_p50", "chunk", 6),
    ("echo_delay_p99_ms", "echo99", 7),
    ("send_lag_p99_ms", "lag99", 6),
    ("server_cpu_pct", "cpu%", 6),
    ("cpu_pct_per_session", "cpu%/s", 7),
    ("rss_kib_per_session", "KiB/s", 7),
    ("client_cpu_pct", "gen%", 6),
    ("other_cpu_pct", "other%", 7),
)


def fmt(value: Any) -> str:
    return ("yes" if value else "NO") if isinstance(value, bool) else str(value)


def line(row: dict[str, Any]) -> str:
    cells = " ".join(f"{fmt(row[key]):>{width}}" for key, _, width in COLUMNS)
    return cells + (f"  {row['errors']} errors, first: {row['first_error']}" if row["errors"] else "")


def header() -> str:
    return " ".join(f"{heading:>{width}}" for _, heading, width in COLUMNS)


def show(row: dict[str, Any]) -> dict[str, Any]:
    """Progress: each run's line on stderr as soon as it is known."""
    print(line(row), file=sys.stderr, flush=True)
    return row


def machine() -> str:
    cpu = "unknown CPU"
    for text in Path("/proc/cpuinfo").read_text().splitlines():
        if text.startswith("model name"):
            cpu = text.split(":", 1)[1].strip()
            break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def ratios(results: dict[str, Any], common: int) -> dict[str, float | None]:
    """voxloop divided by the peer: the max N, and the figures of both at the common N."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    ours, theirs = results["voxloop"], results["peer"]
    out = {"max_sessions": ratio(ours["max_sessions"], theirs["max_sessions"])}
    for n in (1, common):
        for key in ("cpu_pct_per_session", "rss_kib_per_session", "late_p99_ms", "first_audio_p50_ms"):
            out[f"{key}_at_{n}"] = ratio(ours[f"at_{n}"][key], theirs[f"at_{n}"][key])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="voxloop only, N=2, D=2 s (CI)")
    parser.add_argument("--no-peer", action="store_true", help="skip the peer")
    parser.add_argument("--duration", type=float, default=20.0, help="D of the measured runs (s)")
    parser.add_argument("--search-duration", type=float, default=8.0, help="D of the search steps (s)")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)), help="N to try, in order")
    parser.add_argument("--refine", type=int, default=3, help="bisections after the first failure")
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds before the search stops")
    parser.add_argument("--wav", type=Path, default=DEFAULT_WAV, help="16 kHz mono speech to loop")
    parser.add_argument(
        "--cluster", metavar="W1,W2", help="instead: clusters of W workers behind a gateway (no peer)"
    )
    args = parser.parse_args()
    args.steps = [int(n) for n in args.steps.split(",")]
    clusters = [int(w) for w in args.cluster.split(",")] if args.cluster else []
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine(),
        "load_average_at_start": os.getloadavg()[0],
        "load_average_at_end": None,
        "command": " ".join(["python", *sys.argv]),
        "criterion": f"all sessions get bot-ready; in every session p99 lateness <= {LATE_LIMIT_MS:.0f} ms "
        f"and >= {MIN_RECEIVED:.0%} of the audio echoed",
        "voxloop_version": __version__,
    }
    impls: dict[str, ArgvFor] = {"voxloop": voxloop_argv}
    if clusters:
        impls = {f"{w}worker": ClusterOf(w) for w in clusters}
    elif not (args.smoke or args.no_peer):
        python = peer_server_python()
        script = ROOT / "bench" / "peer" / "echo_server.py"
        impls["peer"] = lambda port: [str(python), str(script), "--port", str(port)]
        version = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('pipecat-ai'))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        results["peer_version"] = f"pipecat-ai {version.stdout.strip()}"

    print(f"machine: {results['machine']}", flush=True)
    print(header(), file=sys.stderr, flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="voxloop-sessions-") as tmp:
        logdir = Path(tmp)
        if args.smoke:
            for impl, argv_for in impls.items():
                key = "smoke" if impl == "voxloop" else f"smoke_{impl}"
                results[key] = show(measure(impl, argv_for, 2, 2.0, args.wav, logdir))
                rows.append(results[key])
        else:
            deadline = started + args.budget
            for impl, argv_for in impls.items():
                best, reason, runs = search(impl, argv_for, args, logdir, deadline)
                results[impl] = {"max_sessions": best, "search_stopped": reason, "search": runs}
            common = min(results[impl]["max_sessions"] for impl in impls) or 1
            results["common_sessions"] = common
            for n in dict.fromkeys((1, common)):  # N=1: the per-session baseline
                for impl, argv_for in impls.items():  # alternating, so drift hits both alike
                    row = show(measure(impl, argv_for, n, args.duration, args.wav, logdir))
                    results[impl][f"at_{n}"] = row
                    rows.append(row)
            if "peer" in impls:
                results["ratios_voxloop_over_peer"] = ratios(results, common)
            if len(clusters) > 1:
                first, last = results[f"{clusters[0]}worker"], results[f"{clusters[-1]}worker"]
                results["capacity_ratio"] = (
                    round(last["max_sessions"] / first["max_sessions"], 2) if first["max_sessions"] else None
                )

    print(header())
    for row in rows:
        print(line(row))
    for impl in impls if not args.smoke else ():
        print(
            f"{impl}: sustains {results[impl]['max_sessions']} sessions ({results[impl]['search_stopped']})"
        )
    if "ratios_voxloop_over_peer" in results:
        print("voxloop/peer:", json.dumps(results["ratios_voxloop_over_peer"]))
    if "capacity_ratio" in results:
        print(f"{clusters[-1]} workers sustain {results['capacity_ratio']}x what {clusters[0]} does")
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["load_average_at_end"] = os.getloadavg()[0]
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = ("sessions-cluster" if clusters else "sessions") + ("-smoke.json" if args.smoke else ".json")
    (out / name).write_text(json.dumps(results, indent=2) + "\n")
    print(f"elapsed {results['elapsed_s']} s; wrote bench/results/{name}")
    return 0 if all(row["sustained"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
