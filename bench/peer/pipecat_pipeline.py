"""Peer benchmark: frame throughput and idle latency through a pipecat pipeline.

Run this with the python of the separate pipecat virtual environment (see
``bench/_peer_env.py``); pipecat is never a dependency of voxloop itself. It
measures the same two things as voxloop's own pipeline benchmark, so the two
numbers can be put side by side:

* throughput: how fast a burst of small text frames crosses N pass-through
  processors, and
* idle latency: how long one frame takes to cross the same chain when nothing
  else is in flight.

The result is one JSON line on stdout. Everything else (pipecat's loguru
output, progress) goes to stderr, so callers can parse stdout as is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import statistics
import sys
import time
from importlib.metadata import version

# pipecat logs an INFO banner the moment it is imported, through loguru's
# default sink. Re-point loguru before importing pipecat so stdout stays
# reserved for the JSON result and stderr only carries warnings and errors.
from loguru import logger

logger.remove()
logger.add(sys.stderr, level="WARNING")

from pipecat.frames.frames import Frame, TextFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

# Upper bounds on each wait, so a stuck pipeline fails the run instead of
# hanging the benchmark that called us.
START_TIMEOUT_S = 60.0
BURST_TIMEOUT_S = 600.0
SAMPLE_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 60.0


class PassThrough(FrameProcessor):
    """A hop that does nothing but let the base class see the frame and forward it."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class Capture(FrameProcessor):
    """The last processor: counts TextFrames and wakes the driver at a target count.

    The arrival time of the most recent TextFrame is kept so the driver can
    compute a latency without paying for its own wake-up.
    """

    def __init__(self):
        super().__init__(name="capture")
        self.count = 0
        self.last_arrival_ns = 0
        self._target = math.inf
        self.reached = asyncio.Event()

    def expect(self, n: int) -> None:
        """Arm the event to fire once ``n`` more TextFrames have arrived."""
        self._target = self.count + n
        self.reached.clear()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            self.last_arrival_ns = time.perf_counter_ns()
            self.count += 1
            if self.count >= self._target:
                self.reached.set()
        # Forward everything: the worker's sink must see the EndFrame to finish.
        await self.push_frame(frame, direction)


async def push_burst(worker: PipelineWorker, capture: Capture, n: int) -> float:
    """Queue ``n`` text frames in one call; return seconds until all arrived."""
    frames = [TextFrame("x") for _ in range(n)]
    capture.expect(n)
    t0 = time.perf_counter_ns()
    await worker.queue_frames(frames)
    await asyncio.wait_for(capture.reached.wait(), BURST_TIMEOUT_S)
    return (capture.last_arrival_ns - t0) / 1e9


async def one_way_latency_ns(worker: PipelineWorker, capture: Capture) -> int:
    """Send one frame through an idle pipeline; return its transit time in ns."""
    frame = TextFrame("x")
    capture.expect(1)
    t0 = time.perf_counter_ns()
    await worker.queue_frame(frame)
    await asyncio.wait_for(capture.reached.wait(), SAMPLE_TIMEOUT_S)
    return capture.last_arrival_ns - t0


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[rank - 1])


async def run_benchmark(processors: int, frames: int, samples: int, warmup: int) -> dict:
    capture = Capture()
    hops = [PassThrough(name=f"hop{i}") for i in range(processors)]
    pipeline = Pipeline([*hops, capture])

    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(),
        enable_rtvi=False,
        idle_timeout_secs=None,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _on_started(_worker, _frame):
        started.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run_task = asyncio.create_task(runner.run())

    try:
        await asyncio.wait_for(started.wait(), START_TIMEOUT_S)

        if warmup > 0:
            await push_burst(worker, capture, warmup)

        burst_s = await push_burst(worker, capture, frames)

        latencies = [await one_way_latency_ns(worker, capture) for _ in range(samples)]
    except BaseException:
        await runner.cancel(reason="benchmark failed")
        await asyncio.wait_for(run_task, SHUTDOWN_TIMEOUT_S)
        raise

    # Graceful end: EndFrame travels the whole chain, then the runner returns.
    await worker.stop_when_done()
    await asyncio.wait_for(run_task, SHUTDOWN_TIMEOUT_S)

    sent = warmup + frames + samples
    if capture.count != sent:
        raise RuntimeError(f"capture saw {capture.count} text frames, {sent} were sent")

    latencies.sort()
    median_us = statistics.median(latencies) / 1000.0
    p99_us = percentile(latencies, 99.0) / 1000.0
    return {
        "impl": "pipecat",
        "version": version("pipecat-ai"),
        "processors": processors,
        "frames": frames,
        "throughput_fps": round(frames / burst_s, 1),
        "latency_median_us": round(median_us, 2),
        "latency_p99_us": round(p99_us, 2),
        "per_hop_median_us": round(median_us / processors, 2),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processors", type=int, default=10, help="pass-through hops (N)")
    parser.add_argument("--frames", type=int, default=20000, help="frames in the throughput burst")
    parser.add_argument("--samples", type=int, default=2000, help="idle-latency samples")
    parser.add_argument("--warmup", type=int, default=500, help="uncounted frames sent first")
    args = parser.parse_args(argv)
    if args.processors < 1 or args.frames < 1 or args.samples < 1 or args.warmup < 0:
        parser.error("--processors, --frames and --samples must be >= 1, --warmup >= 0")

    result = asyncio.run(run_benchmark(args.processors, args.frames, args.samples, args.warmup))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
