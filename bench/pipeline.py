"""Pipeline benchmark, voxloop and the peer (pipecat) side by side in one run.

    python bench/pipeline.py            # full run: both implementations, memory check
    python bench/pipeline.py --smoke    # quick voxloop-only run for CI (no peer install)

Each implementation runs in its own process (the peer in its own virtual environment, built on
first use by ``bench/_peer_env.py``), alternating for ``--rounds`` rounds; the median of the
rounds is reported. Results go to stdout and to ``bench/results/pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from _peer_env import peer_python

ROOT = Path(__file__).resolve().parent.parent
TARGET_THROUGHPUT_RATIO = 10.0
TARGET_LATENCY_RATIO = 10.0


def run_json(python: Path | str, script: Path, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [str(python), str(script), *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{script.name} failed with exit code {done.returncode}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def median_of(rounds: list[dict[str, object]]) -> dict[str, object]:
    merged = dict(rounds[0])
    for key in ("throughput_fps", "latency_median_us", "latency_p99_us", "per_hop_median_us"):
        merged[key] = round(statistics.median(float(str(r[key])) for r in rounds), 2)
    merged["rounds"] = len(rounds)
    return merged


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small voxloop-only run (CI)")
    parser.add_argument("--no-peer", action="store_true", help="skip the peer")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--memory", type=int, default=1_000_000, help="frames for the memory check")
    parser.add_argument(
        "--telemetry",
        choices=["off", "metrics", "traces"],
        default="off",
        help="voxloop with a session's telemetry",
    )
    args = parser.parse_args()
    sizes = ["--frames", str(args.frames), "--samples", str(args.samples)]
    if args.smoke:
        args.no_peer, args.rounds, args.memory = True, 1, 20_000
        sizes = ["--frames", "2000", "--samples", "200", "--warmup", "100"]

    ours_script = ROOT / "bench" / "voxloop_pipeline.py"
    peer_script = ROOT / "bench" / "peer" / "pipecat_pipeline.py"
    peer = None if args.no_peer else peer_python(ROOT)
    ours_rounds, peer_rounds = [], []
    for index in range(args.rounds):
        print(f"round {index + 1}/{args.rounds}", file=sys.stderr, flush=True)
        ours_rounds.append(run_json(sys.executable, ours_script, *sizes, "--telemetry", args.telemetry))
        if peer is not None:
            peer_rounds.append(run_json(peer, peer_script, *sizes))
    ours = median_of(ours_rounds)
    memory = run_json(sys.executable, ours_script, "--memory", str(args.memory))

    print(f"machine: {machine()}")
    print(f"{'':10} {'frames/s':>12} {'median us':>10} {'p99 us':>10} {'us/hop':>8}")
    results: dict[str, object] = {"machine": machine(), "voxloop": ours, "memory": memory}
    rows = [ours]
    if peer_rounds:
        theirs = median_of(peer_rounds)
        rows.append(theirs)
        results["peer"] = theirs
    for row in rows:
        label = f"{row['impl']} {row['version']}"
        print(
            f"{label:10} {row['throughput_fps']:>12} {row['latency_median_us']:>10} "
            f"{row['latency_p99_us']:>10} {row['per_hop_median_us']:>8}"
        )
    if peer_rounds:

        def number(row: dict[str, object], key: str) -> float:
            return float(str(row[key]))

        throughput = number(ours, "throughput_fps") / number(theirs, "throughput_fps")
        latency = number(theirs, "per_hop_median_us") / number(ours, "per_hop_median_us")
        results["ratios"] = {
            "throughput": round(throughput, 1),
            "per_hop_latency": round(latency, 1),
        }
        print(
            f"voxloop/peer throughput: {throughput:.1f}x (target >= {TARGET_THROUGHPUT_RATIO}x); "
            f"peer/voxloop per-hop latency: {latency:.1f}x (target >= {TARGET_LATENCY_RATIO}x)"
        )
    print(
        f"resident memory, {memory['frames']} frames with an observer: "
        f"{memory['rss_kib_after_first_tenth']} KiB after the first tenth, "
        f"{memory['rss_kib_at_end']} KiB at the end (growth {memory['growth_kib']} KiB)"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / ("pipeline-smoke.json" if args.smoke else "pipeline.json")).write_text(
        json.dumps(results, indent=2) + "\n"
    )
    if float(str(memory["growth_kib"])) > 4096:
        print("memory grew: FAIL", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
