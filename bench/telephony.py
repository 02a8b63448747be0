"""Concurrent phone calls on one voxloop server, and one long call, through the Twilio emulator.

    python bench/telephony.py --smoke        # 2 echo calls of 3 s (CI, well under 30 s)
    python bench/telephony.py --calls 20     # 20 concurrent echo calls of 30 s
    python bench/telephony.py --long 600     # one 10-minute call: drift and memory over time

The server is its own process (``voxloop run --bot echo --transport twilio --no-verify-webhooks``).
This process is Twilio: every call POSTs the webhook, opens the media stream and streams a speech
WAV, looped, as 20 ms mu-law media at real time, while the bot's audio plays on a real-time line
that acknowledges marks (``voxloop.testing.telephony``). Per call: how long the line starved mid
reply, how far the server ran ahead of the line, how much of what was sent came back and played,
and the echo's added latency (the first caller frame sent to the first bot frame played). Server
CPU (``/proc/<pid>/stat``) while all calls stream, and RSS at the start and the end.

``--long``: one call streaming for that many seconds without a break; RSS every 30 s (flat memory),
and drift: the time the line took to play what it played, minus the length of that audio.

Not here yet: the peer's Twilio serializer pipeline side by side, and the default bot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from voxloop.testing import load_wav  # noqa: E402
from voxloop.testing.telephony import TwilioCloud  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SHARED = Path(os.environ.get("VOXLOOP_SHARED", ROOT.parent / "shared"))
WAV = SHARED / "testdata" / "audio" / "utt01_weather.wav"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def wait_listening(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise TimeoutError("the server did not start")


async def one_call(cloud: TwilioCloud, webhook: str, pcm: bytes, rate: int, seconds: float) -> dict[str, Any]:
    async with cloud.call(webhook) as call:
        await call.dial()
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        sent = 0.0
        while (left := int((seconds - sent) * rate)) > 0:
            part = pcm[: 2 * left]
            await call.send_audio(part, rate)
            sent += len(part) / (2 * rate)
        await call.wait_for_quiet_line(timeout=10)
        line = call.line
        await call.hang_up()
    first = line.first_played_at
    return {
        "starved_ms": line.starved_frames * 20,
        "max_ahead_ms": round(line.max_buffered_secs * 1000),
        "played_of_sent": round(line.played_bytes / max(1, int(seconds * 8000)), 3),
        "echo_latency_ms": round((first - sent_at) * 1000) if first is not None else None,
        "protocol_errors": len(call.protocol_errors),
    }


async def run_calls(port: int, pid: int, calls: int, seconds: float) -> dict[str, Any]:
    pcm, rate, _ = load_wav(WAV)
    cloud = TwilioCloud("bench-auth-token")
    webhook = f"http://127.0.0.1:{port}/twilio"
    rss_before = rss_kib(pid)
    ticks, wall = cpu_ticks(pid), time.monotonic()
    results = await asyncio.gather(*(one_call(cloud, webhook, pcm, rate, seconds) for _ in range(calls)))
    cpu_pct = (cpu_ticks(pid) - ticks) / CLK_TCK / (time.monotonic() - wall) * 100
    latencies = sorted(r["echo_latency_ms"] for r in results if r["echo_latency_ms"] is not None)
    return {
        "calls": calls,
        "seconds": seconds,
        "server_cpu_pct": round(cpu_pct, 1),
        "cpu_pct_per_call": round(cpu_pct / calls, 2),
        "rss_kib_before": rss_before,
        "rss_kib_after": rss_kib(pid),
        "starved_ms_max": max(r["starved_ms"] for r in results),
        "max_ahead_ms": max(r["max_ahead_ms"] for r in results),
        "played_of_sent_min": min(r["played_of_sent"] for r in results),
        "echo_latency_ms_p50": latencies[len(latencies) // 2] if latencies else None,
        "protocol_errors": sum(r["protocol_errors"] for r in results),
    }


async def run_long(port: int, pid: int, seconds: float) -> dict[str, Any]:
    pcm, rate, _ = load_wav(WAV)
    cloud = TwilioCloud("bench-auth-token")
    rss: list[int] = []

    async def sample() -> None:
        while True:
            rss.append(rss_kib(pid))
            await asyncio.sleep(30)

    sampler = asyncio.create_task(sample())
    try:
        async with cloud.call(f"http://127.0.0.1:{port}/twilio") as call:
            await call.dial()
            # One continuous stream (separate sends would leave the caller's own gaps between them).
            audio = pcm * (int(seconds * rate * 2) // len(pcm) + 1)
            audio = audio[: int(seconds * rate) * 2]
            sent = len(audio) / (2 * rate)
            await call.send_audio(audio, rate)
            await call.wait_for_quiet_line(timeout=10)
            line = call.line
            await call.hang_up()
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    assert line.first_played_at is not None and line.last_played_at is not None
    played = line.played_bytes / 8000
    return {
        "seconds": round(sent, 1),
        "played_secs": round(played, 2),
        "drift_ms": round((line.last_played_at - line.first_played_at + 0.02 - played) * 1000, 1),
        "starved_ms": line.starved_frames * 20,
        "rss_kib_every_30s": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="2 calls of 3 s")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--long", type=float, metavar="SECS", help="one call of SECS seconds instead")
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.seconds = 2, 3.0
    port = free_port()
    argv = [sys.executable, "-m", "voxloop.cli", "run", "--bot", "echo", "--transport", "twilio"]
    argv += ["--no-verify-webhooks", "--port", str(port), "--max-sessions", str(args.calls + 5)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(wait_listening(port))
        if args.long:
            result = asyncio.run(run_long(port, server.pid, args.long))
        else:
            result = asyncio.run(run_calls(port, server.pid, args.calls, args.seconds))
    finally:
        server.terminate()
        server.wait(15)
    print(json.dumps(result, indent=2))
    return 0 if not result.get("protocol_errors") and result.get("starved_ms", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
