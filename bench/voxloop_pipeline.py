"""voxloop side of the pipeline benchmark: throughput and idle latency through N processors.

Measures exactly what ``bench/peer/pipecat_pipeline.py`` measures on the peer, so the driver
(``bench/pipeline.py``) can put the two side by side. Prints one JSON line on stdout.
With ``--memory N`` it instead pushes N frames through the chain with an observer attached and
reports how the resident memory moved between the first tenth and the end (it should stay flat).
With ``--rtvi-observer`` the throughput and latency run has an RTVI observer attached, which maps
none of the chain's frames (as it maps no audio by default): the observer hub should skip them.
``--telemetry metrics|traces`` attaches a session's telemetry observer, as ``voxloop run`` does
(traces: with a tracer exporting to memory), and with traces also times turning one typical turn
into its spans (``turn_spans_us``): traces cost per turn, never per frame.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from typing import Any

from voxloop import __version__
from voxloop.frames import Frame, TextFrame
from voxloop.pipeline import (
    BaseObserver,
    FrameDirection,
    FrameProcessor,
    FramePushed,
    Pipeline,
    PipelineRunner,
    PipelineTask,
    SeenFrames,
)

SAMPLE_TIMEOUT_S = 10.0
BURST_TIMEOUT_S = 600.0


class PassThrough(FrameProcessor):
    """A hop that only passes the frame on (the default behaviour)."""


class Capture(FrameProcessor):
    """Last processor: counts TextFrames, notes the last arrival, wakes the driver at a target."""

    def __init__(self) -> None:
        super().__init__(name="capture")
        self.count = 0
        self.last_arrival_ns = 0
        self._target = math.inf
        self.reached = asyncio.Event()

    def expect(self, n: int) -> None:
        self._target = self.count + n
        self.reached.clear()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TextFrame):
            self.last_arrival_ns = time.perf_counter_ns()
            self.count += 1
            if self.count >= self._target:
                self.reached.set()
        await self.push_frame(frame, direction)


class CountingObserver(BaseObserver):
    """Sees every hop and acts once per frame, the way the RTVI observer does."""

    def __init__(self) -> None:
        self.hops = 0
        self.frames = 0
        self._seen = SeenFrames()
        self.target_hops = 0
        self.caught_up = asyncio.Event()

    async def on_push_frame(self, data: FramePushed) -> None:
        self.hops += 1
        if self._seen.first_sight(data.frame):
            self.frames += 1
        if self.hops >= self.target_hops:
            self.caught_up.set()


async def push_burst(task: PipelineTask, capture: Capture, n: int) -> float:
    frames = [TextFrame("x") for _ in range(n)]
    capture.expect(n)
    t0 = time.perf_counter_ns()
    await task.queue_frames(frames)
    await asyncio.wait_for(capture.reached.wait(), BURST_TIMEOUT_S)
    return (capture.last_arrival_ns - t0) / 1e9


async def one_way_latency_ns(task: PipelineTask, capture: Capture) -> int:
    frame = TextFrame("x")
    capture.expect(1)
    t0 = time.perf_counter_ns()
    await task.queue_frame(frame)
    await asyncio.wait_for(capture.reached.wait(), SAMPLE_TIMEOUT_S)
    return capture.last_arrival_ns - t0


def resident_bytes() -> int:
    """Current resident set size (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(sorted_values: list[int], q: float) -> float:
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[rank - 1])


async def start(
    processors: int, observers: list[BaseObserver]
) -> tuple[PipelineTask, Capture, asyncio.Task[None]]:
    capture = Capture()
    pipeline = Pipeline([*(PassThrough(name=f"hop{i}") for i in range(processors)), capture])
    task = PipelineTask(pipeline, observers=observers, idle_timeout_secs=None)
    run = asyncio.create_task(PipelineRunner(handle_sigint=False, handle_sigterm=False).run(task))
    await task.wait_until_started()
    return task, capture, run


def telemetry_observers(mode: str) -> list[BaseObserver]:
    """The observer ``voxloop run`` attaches to each session, with metrics and optionally traces."""
    if mode == "off":
        return []
    from prometheus_client import CollectorRegistry

    from voxloop.telemetry import Telemetry
    from voxloop.telemetry.metrics import ServerMetrics

    session = Telemetry(
        ServerMetrics(CollectorRegistry()), memory_tracer() if mode == "traces" else None
    ).session("bench", "bench")
    session.started()
    return [session.observer]


def memory_tracer() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    return provider.get_tracer("bench")


def turn_spans_us(turns: int = 2000) -> float:
    """Microseconds to turn one finished turn (11 service intervals) into its spans."""
    from prometheus_client import CollectorRegistry

    from voxloop.telemetry import Interval, Telemetry, Turn
    from voxloop.telemetry.metrics import ServerMetrics

    session = Telemetry(ServerMetrics(CollectorRegistry()), memory_tracer()).session("bench", "bench")
    session.started()
    kinds = ["vad", "stt", "turn_detection", "llm", "function", "llm", *(["tts"] * 5)]
    ms = 1_000_000
    t0 = time.perf_counter_ns()
    for n in range(turns):
        turn = Turn(n, 0, 3000 * ms, speech_end_ns=1000 * ms, user_stopped_ns=1700 * ms)
        turn.first_llm_text_ns, turn.first_tts_audio_ns, turn.bot_started_ns = 1750 * ms, 1900 * ms, 2000 * ms
        turn.user_text, turn.bot_text = ["What time is it?"], "It is twelve o'clock."
        turn.intervals = [
            Interval(k, f"voxloop.{k}", i * ms, (i + 1) * ms, {"a": 1}) for i, k in enumerate(kinds)
        ]
        session.turn_finished(turn)
    return (time.perf_counter_ns() - t0) / 1000 / turns


async def run_benchmark(
    processors: int,
    frames: int,
    samples: int,
    warmup: int,
    rtvi_observer: bool = False,
    telemetry: str = "off",
) -> dict[str, object]:
    observers: list[BaseObserver] = telemetry_observers(telemetry)
    if rtvi_observer:
        from voxloop.rtvi import RTVIProcessor

        observers.append(RTVIProcessor(client_ready_timeout_secs=None).observer)
    task, capture, run = await start(processors, observers)
    if warmup:
        await push_burst(task, capture, warmup)
    burst_s = await push_burst(task, capture, frames)
    latencies = sorted([await one_way_latency_ns(task, capture) for _ in range(samples)])
    await task.stop_when_done()
    await run
    sent = warmup + frames + samples
    if capture.count != sent:
        raise RuntimeError(f"capture saw {capture.count} text frames, {sent} were sent")
    median_us = statistics.median(latencies) / 1000.0
    return {
        "impl": "voxloop",
        "version": __version__,
        "processors": processors,
        "frames": frames,
        "throughput_fps": round(frames / burst_s, 1),
        "latency_median_us": round(median_us, 2),
        "latency_p99_us": round(percentile(latencies, 99.0) / 1000.0, 2),
        "per_hop_median_us": round(median_us / processors, 2),
        "python": platform.python_version(),
        **({"observers": "rtvi"} if rtvi_observer else {}),
        "telemetry": telemetry,
    }


async def run_memory(processors: int, total: int, batch: int = 10_000) -> dict[str, object]:
    """Push ``total`` frames with an observer attached; compare resident memory over time."""
    observer = CountingObserver()
    task, capture, run = await start(processors, [observer])
    samples: list[int] = []
    sent = 0
    while sent < total:
        sent += batch
        observer.target_hops = sent * (processors + 2)  # every hop of every frame, task ends included
        observer.caught_up.clear()
        await push_burst(task, capture, batch)
        await observer.caught_up.wait()  # the observer may lag behind the pipeline
        gc.collect()
        samples.append(resident_bytes())
    await task.stop_when_done()
    await run
    tenth = samples[max(0, len(samples) // 10 - 1)]
    return {
        "impl": "voxloop",
        "frames": total,
        "observer_frames_seen": observer.frames,
        "rss_kib_after_first_tenth": round(tenth / 1024, 1),
        "rss_kib_at_end": round(samples[-1] / 1024, 1),
        "growth_kib": round((samples[-1] - tenth) / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processors", type=int, default=10)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--memory", type=int, default=0, help="run the memory check with N frames")
    parser.add_argument("--rtvi-observer", action="store_true", help="attach an RTVI observer")
    parser.add_argument("--telemetry", choices=["off", "metrics", "traces"], default="off")
    args = parser.parse_args(argv)
    if args.memory:
        result = asyncio.run(run_memory(args.processors, args.memory))
    else:
        result = asyncio.run(
            run_benchmark(
                args.processors, args.frames, args.samples, args.warmup, args.rtvi_observer, args.telemetry
            )
        )
        if args.telemetry == "traces":
            result["turn_spans_us"] = round(turn_spans_us(), 1)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
