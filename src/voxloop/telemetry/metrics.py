"""Prometheus metrics of a voxloop process: sessions, turn latencies, errors, load.

One :class:`ServerMetrics` holds every metric on one registry; :func:`process_metrics` is the process's
own (on prometheus_client's default registry, beside its process and GC collectors), which ``/metrics``
of ``voxloop run`` serves. Tests make their own on a fresh ``CollectorRegistry``. Names are listed in
docs/operations.md. Labels stay low-cardinality: a transport, a model, a function, an error kind.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..pipeline import Clock, SystemClock

__all__ = ["CONTENT_TYPE_LATEST", "EventLoopLagMonitor", "GatewayMetrics", "ServerMetrics", "process_metrics"]

# Seconds. Voice latencies live between 0.1 s and a few seconds; the buckets are dense there.
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class ServerMetrics:
    """Every metric voxloop exports, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.sessions_live = Gauge("voxloop_sessions_live", "Sessions running now", ["transport"], registry=r)
        self.sessions_started = Counter(
            "voxloop_sessions_started", "Sessions started", ["transport"], registry=r
        )
        self.sessions_ended = Counter(
            "voxloop_sessions_ended", "Sessions ended, failed ones included", ["transport"], registry=r
        )
        self.sessions_failed = Counter(
            "voxloop_sessions_failed",
            "Sessions that failed: the bot could not start, or the session ended on an error",
            ["transport", "stage"],
            registry=r,
        )
        self.session_duration = Histogram(
            "voxloop_session_duration_seconds",
            "How long sessions lasted",
            buckets=(10, 30, 60, 120, 300, 600, 1200, 3600),
            registry=r,
        )
        self.turns = Counter("voxloop_turns", "User turns answered or interrupted", registry=r)
        self.interruptions = Counter("voxloop_interruptions", "Bot replies cut short by the user", registry=r)
        self.voice_to_voice = Histogram(
            "voxloop_voice_to_voice_seconds",
            "From the end of the user's speech to the bot's first audio",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stt_latency = Histogram(
            "voxloop_stt_seconds",
            "From the end of a speech segment to its transcript",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_ttfb = Histogram(
            "voxloop_llm_ttfb_seconds",
            "LLM time to first token, as the LLM service measured it",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tts_ttfb = Histogram(
            "voxloop_tts_ttfb_seconds",
            "TTS time to first audio, as the TTS service measured it",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_tokens = Counter("voxloop_llm_tokens", "LLM tokens used", ["model", "type"], registry=r)
        self.function_calls = Counter(
            "voxloop_function_calls", "Function calls settled", ["function", "outcome"], registry=r
        )
        self.function_call_duration = Histogram(
            "voxloop_function_call_seconds",
            "Function call durations",
            ["function"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("voxloop_errors", "Errors reported in sessions", ["kind", "fatal"], registry=r)
        self.event_loop_lag = Histogram(
            "voxloop_event_loop_lag_seconds",
            "How late the event loop woke a timer: a busy loop delays every session's audio",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.model_load = Gauge(
            "voxloop_model_load_seconds", "How long each shared model took to load", ["model"], registry=r
        )
        r.register(_SpeechWorkerCollector())

    def render(self) -> bytes:
        """The text exposition of every metric on the registry (what ``/metrics`` returns)."""
        return generate_latest(self.registry)


class _SpeechWorkerCollector:
    """Requests waiting on or running in each shared speech worker process, read when scraped."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "voxloop_speech_worker_queue_depth",
            "Speech requests queued or running in a shared speech worker",
            labels=["engine"],
        )
        engines = sys.modules.get("voxloop.services.local.speech_engines")
        if engines is not None:  # no speech worker was ever used in this process otherwise
            for engine, depth in engines.speech_worker_queue_depths().items():
                family.add_metric([engine], depth)
        yield family


class GatewayMetrics:
    """What a cluster gateway exports: how it placed sessions, and the cluster's capacity."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:  # its own registry, with the process's CPU, memory and GC figures
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = r = registry
        self.starts = Counter(
            "voxloop_gateway_starts",
            "POST /start answered: placed on a worker, full (503), registry unreachable (503), bad request",
            ["transport", "outcome"],
            registry=r,
        )
        self.reserve_seconds = Histogram(
            "voxloop_gateway_reserve_seconds",
            "How long booking a worker took in the registry",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.signalling = Counter(
            "voxloop_gateway_signalling",
            "WebRTC offers forwarded to workers, by outcome",
            ["outcome"],
            registry=r,
        )
        self.workers = Gauge(
            "voxloop_cluster_workers", "Workers in the registry, by state", ["state"], registry=r
        )
        self.cluster_sessions = Gauge(
            "voxloop_cluster_sessions", "Sessions running or booked on the cluster's workers", registry=r
        )
        self.cluster_free = Gauge(
            "voxloop_cluster_free_places", "Sessions the ready workers can still take", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


_process_metrics: ServerMetrics | None = None


def process_metrics() -> ServerMetrics:
    """This process's metrics, on prometheus_client's default registry (created on first use)."""
    global _process_metrics
    if _process_metrics is None:
        _process_metrics = ServerMetrics(REGISTRY)
    return _process_metrics


class EventLoopLagMonitor:
    """Measures how late the loop runs a timer every ``interval`` seconds; owned by the server.

    A loop blocked by CPU work (a model run on the loop, a slow callback) shows up here before users
    hear it as choppy audio.
    """

    def __init__(self, histogram: Histogram, interval: float = 0.25, clock: Clock | None = None) -> None:
        self._histogram = histogram
        self._interval = interval
        self._clock: Clock = clock or SystemClock()
        self._task: asyncio.Task[None] | None = None
        self.last_lag_secs = 0.0
        self.measured = asyncio.Event()
        """Set after each measurement (what a test waits on)."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="event-loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _watch(self) -> None:
        while True:
            before = self._clock.now_ns()
            await self._clock.sleep(self._interval)
            late = max(0.0, (self._clock.now_ns() - before) / 1e9 - self._interval)
            self._histogram.observe(late)
            self.last_lag_secs = late
            self.measured.set()
