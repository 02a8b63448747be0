"""Local speech-to-text (Whisper tiny.en): the encoder window rule against Whisper's 30 s window.

    python bench/stt.py             # the whole accuracy set (WAVs, espeak, piper), 3 rounds each
    python bench/stt.py --smoke     # the WAVs and espeak's questions, one round (CI)
    python bench/stt.py --windows 5,10,20   # also each fixed window, to choose the rule

Per clip of the accuracy set (``voxloop.testing.stt_accuracy``): the transcript and time with the full
30 s window (faster-whisper's own input) and with the window rule of ``voxloop.services.local.whisper``,
and the word errors of each against the text that was said. Also the other costs on the STT path: the
log-mel features, and the hand-off to the Whisper thread and back to the event loop. Times are the fastest
of the rounds (the machine is shared). Results go to stdout and ``bench/results/stt.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from voxloop.services.local import close_speech_workers
from voxloop.services.local import whisper as w
from voxloop.services.stt import Transcript
from voxloop.testing.stt_accuracy import Clip, spoken_clips, wav_clips, word_errors

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT.parent / "shared" / "testdata" / "audio"
PIPER_QUESTIONS = (
    "What time is it?",
    "What is the weather like in Paris today?",
    "Please set a timer for ten minutes.",
    "Turn off the lights in the kitchen.",
    "Can you tell me a joke about computers?",
)


def timed(model: object, clip: Clip, window: int | None, rounds: int) -> tuple[Transcript, float]:
    """(transcript, fastest ms) of ``rounds`` transcriptions of ``clip`` (``window`` None: the rule)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        transcript = w.transcribe_pcm(model, clip.pcm, window_secs=window)
        best = min(best, time.perf_counter() - started)
    return transcript, best * 1000


def features_ms(model: object, clip: Clip, rounds: int) -> float:
    samples = w.pcm_to_whisper_samples(clip.pcm)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        model.feature_extractor(samples)  # type: ignore[attr-defined]
        best = min(best, time.perf_counter() - started)
    return best * 1000


async def hand_off_ms(calls: int = 200) -> tuple[float, float]:
    """Median ms from submitting to the Whisper thread to the work starting, and from its end to the
    awaiting coroutine running again (the event loop idle otherwise)."""
    loop = asyncio.get_running_loop()
    to_thread, back = [], []
    for _ in range(calls):
        submitted = time.perf_counter()
        started = await loop.run_in_executor(w.whisper_executor(), time.perf_counter)
        ended = time.perf_counter()
        to_thread.append(started - submitted)
        back.append(ended - started)
    return statistics.median(to_thread) * 1000, statistics.median(back) * 1000


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="WAVs and espeak's questions, one round (CI)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--windows", default="", help="fixed windows (s) to measure as well, e.g. 5,10,20")
    args = parser.parse_args()
    rounds = 1 if args.smoke else args.rounds
    windows = [int(x) for x in args.windows.split(",") if x]

    clips = wav_clips(AUDIO)
    try:
        if args.smoke:
            clips += (await spoken_clips("espeak"))[:1]
        else:
            clips += await spoken_clips("espeak")
            clips += await spoken_clips("piper", PIPER_QUESTIONS)
    finally:
        await close_speech_workers()
    started = time.perf_counter()
    model = w.load_whisper_model()
    print(f"model load {time.perf_counter() - started:.2f} s; {len(clips)} clips")
    w.transcribe_pcm(model, clips[0].pcm)  # warm-up

    rows = []
    for clip in clips:
        row: dict[str, object] = {"clip": clip.name, "text": clip.text, "seconds": round(clip.seconds, 2)}
        row["window"] = w.encoder_window_secs(clip.seconds)
        row["features_ms"] = round(features_ms(model, clip, rounds), 1)
        for label, window in [("full", w.FULL_WINDOW_SECS), ("rule", None), *[(f"w{x}", x) for x in windows]]:
            if window is not None and clip.seconds > window:
                continue
            transcript, ms = timed(model, clip, window, rounds)
            text, result = transcript.text, transcript.result
            row[label] = {"text": text, "ms": round(ms, 1), "errors": word_errors(clip.text, text)}
            if isinstance(result, w.WhisperResult):
                row[label].update(decided_on=result.window_secs, avg_logprob=round(result.avg_logprob, 3))
        rows.append(row)
        full, rule = row["full"], row["rule"]
        assert isinstance(full, dict) and isinstance(rule, dict)
        mark = "" if rule["text"] == full["text"] else f"   (30 s: {full['text']!r})"
        timing = f"{clip.seconds:5.2f} s  {full['ms']:5.0f} -> {rule['ms']:4.0f} ms"
        print(f"{timing}  {clip.name[:44]:44}  {rule['text']!r}{mark}")

    summary: dict[str, object] = {"clips": len(rows), "words": sum(len(c.text.split()) for c in clips)}
    for label in ["full", "rule", *[f"w{x}" for x in windows]]:
        cells = [r[label] for r in rows if label in r]
        ms = [c["ms"] for c in cells]  # type: ignore[index]
        summary[label] = {
            "clips": len(cells),
            "errors": sum(c["errors"] for c in cells),  # type: ignore[index]
            "errors_of_full_on_these": sum(r["full"]["errors"] for r in rows if label in r),  # type: ignore[index]
            "p50_ms": round(statistics.median(ms), 1),
            "max_ms": round(max(ms), 1),
            "decided_on_30s": sum(c.get("decided_on") == w.FULL_WINDOW_SECS for c in cells),  # type: ignore[attr-defined]
        }
    summary["features_ms_p50"] = round(statistics.median(r["features_ms"] for r in rows), 1)  # type: ignore[misc]
    to_thread, back = await hand_off_ms()
    summary["hand_off_ms"] = {"to_thread": round(to_thread, 3), "back_to_loop": round(back, 3)}
    print(json.dumps(summary, indent=2))

    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / ("stt-smoke.json" if args.smoke else "stt.json")).write_text(
        json.dumps({"summary": summary, "clips": rows}, indent=2) + "\n"
    )
    rule_summary = summary["rule"]
    assert isinstance(rule_summary, dict)
    if rule_summary["errors"] > rule_summary["errors_of_full_on_these"]:
        print("the window rule makes more word errors than the full window", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
