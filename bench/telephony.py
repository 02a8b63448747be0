"""Phone calls on one core through the Twilio emulator: voxloop and the peer side by side, and one long call.

    python bench/telephony.py --smoke        # voxloop only: 2 echo calls of 3 s, one default-bot call (~20 s)
    python bench/telephony.py                # echo and default bot, voxloop and pipecat 1.14.0, N steps
    python bench/telephony.py --echo-calls 5,10,20 --bot-calls 1,2 --seconds 15 --duration 30
    python bench/telephony.py --long 600     # one 10-minute voxloop echo call: drift and memory over time

Servers, each its own process pinned to CPU 1 (``taskset -c 1``; this process, the load generator,
pins itself to CPU 0; ``--no-pin`` for neither):

* voxloop echo: ``voxloop run --bot echo --transport twilio --no-verify-webhooks``;
* voxloop default bot: ``bench/_voice_server.py --twilio`` (the default offline bot as ``voxloop run``
  serves it, with timing probes; ``VOXLOOP_TURN`` from ``--turn``, Smart Turn by default as the peer);
* the peer (``pipecat-ai==1.14.0`` in ``bench/.venv-pipecat``, built by ``bench/_peer_env.py``):
  ``bench/peer/twilio_server.py --bot echo|default``, its ``TwilioFrameSerializer`` on its FastAPI
  WebSocket transport, the default bot built as ``bench/peer/voice_bot.py`` builds it.

This process is Twilio (``voxloop.testing.telephony``): every call POSTs the webhook, reads the TwiML,
opens the media stream and streams 20 ms mu-law frames at real time; the bot's audio plays on a
real-time line (``bench/_calls.py``). The same emulator, the same audio, the same steps drive both.

Echo, N concurrent calls for ``--seconds`` each, streaming a speech WAV: server CPU while all N stream
(its own and its children's, ``/proc``), per call; gaps on the line (a pause between echoed frames:
the caller never stops); echo latency (a caller frame's send to its echo's arrival, loopback, per
message). Default bot, N calls asking "What is the time?" in a loop for ``--duration``: CPU per call;
gaps inside replies; mouth-to-ear latency per turn (the caller's frame holding the question's last
loud sample sent -> the first bot media message), split by the server's probes as ``bench/voice.py``
splits it: turn detection (VAD stop wait and the end-of-turn model), STT, LLM, TTS, and the rest,
the framework's hops (``overhead``). A step is on time when nothing went wrong on the wire, nearly
everything sent came back (echo) or every question was answered (bot), the server's core was not
saturated, and the media was not late: echo p95 within ``LATE_MS`` of the first step's p50, or the
bot's p90 from the turn's end to its first audio (``compute``: STT on the path, LLM, TTS, hops; the
turn policy's own waits are left out) within twice the first step's p50 plus ``LATE_MS``. It is also
without gaps when the server left at most ``GAP_BUDGET_MS`` of gaps per call-minute on the lines,
which have no jitter buffer of their own (a gap starting within a second of a stall of the load
generator, which shares its event loop with the lines, is the generator's and reported apart). Steps
go up until two in a row are late; the largest N of each kind is a "max concurrent calls".

``--long``: one voxloop echo call streaming for that many seconds without a break; RSS every 30 s
(flat memory), and drift: the echo's latency (caller frame sent -> its echo at the line, aligned by
content as in the echo steps) over the call's last tenth minus over its first; gaps on the line, with
those after a stall of the load generator counted apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _calls import bot_call, echo_call, percentile, summary  # noqa: E402
from _phone_servers import (  # noqa: E402
    SERVER_CPU,
    cpu_model,
    load,
    rss_kib,
    server_pid,
    start_server,
    tree_ticks,
    wait_ready,
)
from _servers import Server  # noqa: E402
from voice import PEER_STT_EVENT, Events, spoken, v2v_breakdown  # noqa: E402
from voxloop import __version__  # noqa: E402
from voxloop.audio import PCMConverter  # noqa: E402
from voxloop.testing import load_wav  # noqa: E402
from voxloop.testing.telephony import TwilioCloud  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SHARED = Path(os.environ.get("VOXLOOP_SHARED", ROOT.parent / "shared"))
WAV = SHARED / "testdata" / "audio" / "utt01_weather.wav"
# A short answer, so a call asks often. Whisper tiny.en hears espeak's "What time is it?" on a phone line
# as "Well, it's time", and the demo agent's long "You said..." answer follows.
QUESTION = "What is the time?"
PEER = "pipecat 1.14.0"
LATE_MS = 100.0
GAP_BUDGET_MS = 100.0  # line gaps the server may cause per call-minute (not after a load-generator stall)
MIN_RECEIVED = 0.95
SPLIT = (
    "total",
    "compute",
    "endpointing",
    "vad_stop",
    "turn_held_after_words",
    "stt_on_path",
    "llm",
    "tts",
    "overhead",
)
HOPS = ("hop_llm_queue", "hop_first_sentence", "hop_tts_to_frame", "hop_output", "hop_socket")
JOINING = asyncio.Lock()


async def cpu_percent_over(pid: int, seconds: float) -> tuple[float, float]:
    """(the CPU % of the server and its children, this load generator's) over the next ``seconds``."""
    ticks, wall, own = tree_ticks(pid), time.monotonic(), time.process_time()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - wall
    return (tree_ticks(pid) - ticks) / CLK_TCK / elapsed * 100, (time.process_time() - own) / elapsed * 100


# -- the steps --------------------------------------------------------------------------------------


async def echo_step(server: Server, n: int, seconds: float, pcm8k: bytes) -> dict[str, Any]:
    cloud = TwilioCloud("bench-auth-token")
    webhook = f"{server.base}/twilio"
    started = [asyncio.Event() for _ in range(n)]
    pid, load_before = server_pid(server), load()

    async def staggered(i: int) -> Any:
        await asyncio.sleep(i * 0.05)
        async with cloud.call(webhook) as call:
            return await echo_call(call, pcm8k, seconds, started[i])

    async def cpu_window() -> tuple[float, float]:
        await asyncio.gather(*(e.wait() for e in started))
        await asyncio.sleep(0.5)
        return await cpu_percent_over(pid, max(0.5, seconds - 0.05 * n - 1.5))

    window = asyncio.create_task(cpu_window())
    results = await asyncio.gather(*(staggered(i) for i in range(n)))
    cpu, loadgen = await window
    return {
        "n": n,
        "server_cpu_pct": round(cpu, 1),
        "cpu_pct_per_call": round(cpu / n, 2),
        "loadgen_cpu_pct": round(loadgen, 1),
        "rss_kib": rss_kib(pid),
        "load": load_before,
        **summary(results),
    }


async def bot_step(
    server: Server, events: Events, n: int, duration: float, question: bytes, stt_event: str
) -> dict[str, Any]:
    cloud = TwilioCloud("bench-auth-token")
    webhook = f"{server.base}/twilio"
    pid, load_before = server_pid(server), load()
    deadline = time.monotonic() + duration
    dialed = [asyncio.Event() for _ in range(n)]

    async def one(i: int) -> tuple[str, Any]:
        await asyncio.sleep(i * 0.7)  # staggered, as independent callers would be
        async with cloud.call(webhook) as call:
            async with JOINING:  # one call joins at a time, so the next session in the log is this one's
                known = len(events.sessions)
                await call.dial()
                while len(events.sessions) == known:
                    await asyncio.sleep(0.02)
                    events.refresh()
                sid = events.sessions[known]
            dialed[i].set()
            return sid, await bot_call(call, question, deadline)

    async def cpu_window() -> tuple[float, float]:
        await asyncio.gather(*(e.wait() for e in dialed))
        return await cpu_percent_over(pid, max(1.0, deadline - time.monotonic()))

    window = asyncio.create_task(cpu_window())
    calls = await asyncio.gather(*(one(i) for i in range(n)))
    cpu, loadgen = await window
    await asyncio.sleep(0.3)  # the last probe events reach the file
    events.refresh()
    rows, unanswered = [], 0
    for sid, result in calls:
        for end_ns, first in result.turns:
            row = v2v_breakdown(events, sid, end_ns, first, stt_event) if first is not None else None
            unanswered += first is None
            if row is not None:
                row["compute"] = row["total"] - row["endpointing"]  # what runs after the turn's end
                rows.append(row)
    out: dict[str, Any] = {
        "n": n,
        "server_cpu_pct": round(cpu, 1),
        "cpu_pct_per_call": round(cpu / n, 2),
        "loadgen_cpu_pct": round(loadgen, 1),
        "rss_kib": rss_kib(pid),
        "load": load_before,
        "turns": sum(len(r.turns) for _, r in calls),
        "unanswered": unanswered,
        "split_turns": len(rows),
        **{
            k: v
            for k, v in summary([r for _, r in calls]).items()
            if not k.startswith(("echo", "lag", "rece"))
        },
    }
    for key in (*SPLIT, *HOPS):
        values = sorted(float(r[key]) for r in rows if r.get(key) is not None)
        out[f"{key}_p50"] = median(values)
        if key in ("total", "compute", "overhead"):
            out[f"{key}_p90"] = percentile(values, 90)
    out["turn_rows"] = [{k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    return out


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def on_time(step: dict[str, Any], first: dict[str, Any], bot: str) -> bool:
    """The calls were served in time: nothing wrong on the wire, the core not saturated, nearly all the
    echo back (or every question answered), and the media not late (see the module docstring)."""
    if step["protocol_errors"] or step["server_cpu_pct"] > 95:
        return False
    if bot == "echo":
        late = (step["echo_ms_p95"] or 1e9) > (first["echo_ms_p50"] or 0) + LATE_MS
        return step["received_of_sent_min"] >= MIN_RECEIVED and not late
    # the part after the turn's end (STT on the path, LLM, TTS, hops): the turn policy's waits (a
    # silence limit or not) would swamp the load's effect
    late = (step["compute_p90"] or 1e9) > 2 * (first["compute_p50"] or 0) + LATE_MS
    return not step["unanswered"] and not late


def without_gaps(step: dict[str, Any], seconds: float) -> bool:
    """At most ``GAP_BUDGET_MS`` of gaps per call-minute that the load generator did not cause."""
    return step["gap_ms_not_loadgen"] <= GAP_BUDGET_MS * step["n"] * seconds / 60


async def phone_question() -> bytes:
    """``QUESTION`` spoken by espeak-ng (as ``bench/voice.py`` speaks its questions), at 8 kHz."""
    from voxloop.services.local import close_speech_workers

    try:
        return PCMConverter(8000).convert(await spoken(QUESTION), 16000, 1)
    finally:
        await close_speech_workers()


async def run_bot(
    bot: str, impls: list[str], steps: list[int], args: argparse.Namespace, servers: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """Every step for each implementation, alternating at each N; an implementation stops once a step
    is not on time. ``servers``: impl -> (a started server, its probe events)."""
    pcm, rate, _ = load_wav(WAV)
    pcm8k = PCMConverter(8000).convert(pcm, rate, 1)
    question = args.question
    results: dict[str, list[dict[str, Any]]] = {impl: [] for impl in impls}
    try:
        # one warm-up call each (first-call costs: imports, the first transcription), not measured
        for impl, (server, events) in servers.items() if not args.smoke else ():
            if bot == "echo":
                await echo_step(server, 1, 2.0, pcm8k)
            else:
                assert events is not None
                await bot_step(server, events, 1, 1.0, question, stt_event(impl))
        going = set(impls)
        for n in steps:
            for impl in impls:
                if impl not in going:
                    continue
                server, events = servers[impl]
                if bot == "echo":
                    step = await echo_step(server, n, args.seconds, pcm8k)
                else:
                    assert events is not None
                    step = await bot_step(server, events, n, args.duration, question, stt_event(impl))
                step["problems_in_log"] = server.log_problems()
                length = args.seconds if bot == "echo" else args.duration
                step["on_time"] = on_time(step, (results[impl] or [step])[0], bot)
                step["sustained"] = step["on_time"] and without_gaps(step, length)
                results[impl].append(step)
                shown = {k: v for k, v in step.items() if k != "turn_rows"}
                print(f"[telephony] {bot} {impl} N={n}: {json.dumps(shown)}", file=sys.stderr, flush=True)
                if len(results[impl]) >= 2 and not any(s["on_time"] for s in results[impl][-2:]):
                    going.discard(impl)  # two steps in a row late: the next would not be on time either
    finally:
        for server, _ in servers.values():
            server.stop()
    return results


def stt_event(impl: str) -> str:
    return "TranscriptionFinishedFrame" if impl == "voxloop" else PEER_STT_EVENT


# -- the report -------------------------------------------------------------------------------------


def max_calls(steps: list[dict[str, Any]], key: str) -> int:
    return max((s["n"] for s in steps if s[key]), default=0)


def ratio(ours: float | None, peer: float | None) -> str:
    return f"{peer / ours:.2f}x" if ours and peer is not None else "-"


def report(bot: str, results: dict[str, list[dict[str, Any]]]) -> None:
    keys = ["server_cpu_pct", "cpu_pct_per_call", "gaps", "gap_ms", "gap_ms_not_loadgen"]
    keys += ["echo_ms_p50", "echo_ms_p95"] if bot == "echo" else ["total_p50", "compute_p90", "overhead_p50"]
    keys += ["loadgen_cpu_pct", "on_time", "sustained"]
    print(f"\n{bot} bot: concurrent calls on one core")
    print("  " + f"{'impl':16} {'N':>4} " + " ".join(f"{k:>16}" for k in keys))
    for impl, steps in results.items():
        for step in steps:
            print("  " + f"{impl:16} {step['n']:>4} " + " ".join(f"{step.get(k)!s:>16}" for k in keys))
    if len(results) == 2:
        (a, ours), (b, peer) = results.items()
        for key, what in (("on_time", "on time"), ("sustained", "on time and without gaps")):
            print(f"  max concurrent calls {what}: {a} {max_calls(ours, key)}, {b} {max_calls(peer, key)}")
        both = {s["n"] for s in ours} & {s["n"] for s in peer}
        for n in sorted(both):
            x = next(s for s in ours if s["n"] == n)
            y = next(s for s in peer if s["n"] == n)
            print(
                f"  N={n}: CPU per call {x['cpu_pct_per_call']} % vs {y['cpu_pct_per_call']} %"
                f" (peer/voxloop {ratio(x['cpu_pct_per_call'], y['cpu_pct_per_call'])})"
            )
    if bot == "default":
        print("  mouth-to-ear split at the first step, p50 ms (peer/voxloop):")
        first = {impl: steps[0] for impl, steps in results.items() if steps}
        for key in (*SPLIT, *HOPS):
            values = [first[impl].get(f"{key}_p50") for impl in first]
            extra = f"  {ratio(values[0], values[1])}" if len(values) == 2 else ""
            print(f"    {key:26} " + " ".join(f"{v!s:>9}" for v in values) + extra)


# -- the long call ----------------------------------------------------------------------------------


async def run_long(server: Server, seconds: float) -> dict[str, Any]:
    """One echo call of ``seconds``: the echo's latency at its start and at its end (the drift between
    what the caller sent and what the line played), gaps, and the server's RSS every 30 s."""
    pcm, rate, _ = load_wav(WAV)
    pcm8k = PCMConverter(8000).convert(pcm, rate, 1)
    cloud = TwilioCloud("bench-auth-token")
    pid = server_pid(server)
    rss: list[int] = []

    async def sample() -> None:
        while True:
            rss.append(rss_kib(pid))
            await asyncio.sleep(30)

    sampler = asyncio.create_task(sample())
    try:
        async with cloud.call(f"{server.base}/twilio") as call:
            result = await echo_call(call, pcm8k, seconds, asyncio.Event())
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    latencies = result.latencies_ms
    tenth = max(1, len(latencies) // 10)
    first, last = statistics.median(latencies[:tenth]), statistics.median(latencies[-tenth:])
    return {
        "seconds": round(result.sent_secs, 1),
        "played_secs": round(result.received_secs, 2),
        "echo_ms_first_tenth": round(first, 1),
        "echo_ms_last_tenth": round(last, 1),
        "drift_ms": round(last - first, 1),
        "gap_ms": result.gap_ms,
        "gap_ms_after_generator_stalls": result.gap_ms_after_stall,
        "generator_max_late_ms": result.max_late_send_ms,
        "protocol_errors": result.protocol_errors,
        "rss_kib_every_30s": rss,
    }


# -- main -------------------------------------------------------------------------------------------


def smoke_ok(results: dict[str, Any]) -> bool:
    echo = results["echo"]["voxloop"][0]
    bot = results["default"]["voxloop"][0]
    # what works, not how fast: the smoke runs on busy CI machines
    fine = (
        not echo["protocol_errors"]
        and echo["received_of_sent_min"] >= 0.9
        and echo["echo_ms_p50"] is not None
    )
    return fine and not bot["protocol_errors"] and not bot["unanswered"] and bot["split_turns"] >= 1


def steps_of(text: str) -> list[int]:
    return sorted({int(x) for x in text.split(",") if x.strip()})


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="voxloop only: 2 echo calls of 3 s, one bot call"
    )
    parser.add_argument("--echo-calls", default="1,10,20,40,60", help="echo steps N (default %(default)s)")
    parser.add_argument("--bot-calls", default="1,2,3,4", help="default-bot steps N (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=15.0, help="each echo call's length")
    parser.add_argument("--duration", type=float, default=30.0, help="each default-bot step's length")
    parser.add_argument("--bots", default="echo,default", help="echo, default or both (default %(default)s)")
    parser.add_argument("--no-peer", dest="peer", action="store_false", help=f"voxloop only, not {PEER}")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="no taskset, no affinity")
    parser.add_argument("--turn", choices=("smart", "vad"), default="smart", help="voxloop's VOXLOOP_TURN")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--logs", type=Path, help="keep the servers' logs and probe events in this directory")
    parser.add_argument(
        "--long", type=float, metavar="SECS", help="one voxloop echo call of SECS seconds instead"
    )
    args = parser.parse_args()
    if args.smoke:
        args.peer, args.echo_calls, args.bot_calls, args.seconds, args.duration = False, "2", "1", 3.0, 1.0
    args.pin = args.pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    if args.pin:
        os.sched_setaffinity(0, {0})
    os.environ["VOXLOOP_TURN"] = args.turn  # read by the default bot in the server process
    os.environ["VOXLOOP_TTS"] = "espeak"  # the peer's bot speaks with the same espeak-ng worker
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        os.environ.pop(key, None)  # the offline bot, whatever the environment
    impls = ["voxloop", PEER] if args.peer else ["voxloop"]
    machine = {
        "voxloop": __version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "cpu": cpu_model(),
        "pinned": f"servers on CPU {SERVER_CPU}, load generator on CPU 0" if args.pin else "no",
        "load_at_start": load(),
        "turn": args.turn,
    }
    print(f"[telephony] {json.dumps(machine)}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="telephony-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            tmp = args.logs
        if args.long:
            server, _ = start_server("voxloop", "echo", tmp, args.pin)
            try:
                result: dict[str, Any] = asyncio.run(run_long(server, args.long))
            finally:
                server.stop()
            print(json.dumps({**machine, **result}, indent=2))
            return 0 if result["gap_ms"] == 0 and not result["protocol_errors"] else 1
        results: dict[str, Any] = {"machine": machine}
        bots = ["echo", "default"] if args.smoke else [b.strip() for b in args.bots.split(",") if b.strip()]
        args.question = asyncio.run(phone_question())
        # --smoke starts every server at once (the models load while the echo runs); a measuring run
        # starts each bot's servers just before its steps, so no model loads on the core under test
        started: dict[str, dict[str, Any]] = {}

        def start(bot: str) -> None:
            started[bot] = {impl: start_server(impl, bot, tmp, args.pin, wait=False) for impl in impls}

        for bot in bots if args.smoke else ():
            start(bot)
        try:
            for bot in bots:
                if bot not in started:
                    start(bot)
                for server, _ in started[bot].values():
                    wait_ready(server)
                steps = steps_of(args.echo_calls if bot == "echo" else args.bot_calls)
                results[bot] = asyncio.run(run_bot(bot, impls, steps, args, started[bot]))
                report(bot, results[bot])
        finally:
            for servers in started.values():
                for server, _ in servers.values():
                    server.stop()
        results["machine"]["load_at_end"] = load()
    print(f"\nload average at the start {machine['load_at_start']}, at the end {machine['load_at_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.smoke:
        return 0 if smoke_ok(results) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
