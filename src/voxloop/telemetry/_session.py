"""A process's telemetry and each session's share of it: metrics, one trace per conversation.

:class:`Telemetry` is what the server holds: the Prometheus metrics (when ``prometheus-client`` is
installed) and a tracer (when tracing is configured, see :mod:`voxloop.telemetry.tracing`).
:meth:`Telemetry.session` gives a :class:`SessionTelemetry` per session: it counts the session, opens
its root span, and is the sink of the session's :class:`~voxloop.telemetry.observer.TurnObserver`,
which reports finished turns and intervals; each finished turn becomes a ``voxloop.turn`` span (child
of the session's) with its service spans as children, all with the times the frames were pushed.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..frames import ErrorFrame, LLMTokenUsage
from ._turns import Interval, Turn
from .observer import TurnObserver

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from .metrics import ServerMetrics

__all__ = ["SessionTelemetry", "Telemetry"]

logger = logging.getLogger("voxloop.telemetry")


class Telemetry:
    """Where sessions report: ``metrics`` (None: no Prometheus) and ``tracer`` (None: no traces)."""

    def __init__(
        self, metrics: ServerMetrics | None = None, tracer: Tracer | None = None, *, provider: Any = None
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self._provider = provider  # the tracer provider this object made, flushed by shutdown()

    @classmethod
    def from_environment(cls) -> Telemetry:
        """The process's metrics if prometheus-client is installed; traces if OTEL_* asks for them."""
        metrics = None
        if importlib.util.find_spec("prometheus_client") is not None:
            from .metrics import process_metrics

            metrics = process_metrics()
        tracer, provider = None, None
        if importlib.util.find_spec("opentelemetry.sdk") is not None:
            from .tracing import tracer_from_environment

            configured = tracer_from_environment()
            if configured is not None:
                tracer, provider = configured
        elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            logger.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the telemetry extra is not installed")
        return cls(metrics, tracer, provider=provider)

    def shutdown(self) -> None:
        """Export the spans still buffered (at process exit)."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None

    @property
    def enabled(self) -> bool:
        return self.metrics is not None or self.tracer is not None

    def session(self, session_id: str, transport: str) -> SessionTelemetry:
        return SessionTelemetry(self, session_id, transport)

    def session_failed_to_start(self, transport: str) -> None:
        if self.metrics is not None:
            self.metrics.sessions_failed.labels(transport, "start").inc()


class SessionTelemetry:
    """One session's metrics and trace. :meth:`started` then :meth:`ended`, exactly once each."""

    def __init__(self, telemetry: Telemetry, session_id: str, transport: str) -> None:
        self._metrics = telemetry.metrics
        self._tracer = telemetry.tracer
        self.session_id = session_id
        self.transport = transport
        self.observer = TurnObserver(self)
        self.turn_count = 0
        self.fatal_error: str | None = None
        self._server_reason: str | None = None  # the server ended the session on purpose (a drain)
        self._span: Span | None = None
        self._started = time.perf_counter()
        self._offset_ns = time.time_ns() - time.monotonic_ns()  # pipeline clock -> epoch (SystemClock)

    def started(self) -> None:
        self._started = time.perf_counter()
        if self._metrics is not None:
            self._metrics.sessions_started.labels(self.transport).inc()
            self._metrics.sessions_live.labels(self.transport).inc()
        if self._tracer is not None:
            from opentelemetry.context import Context

            self._span = self._tracer.start_span(
                "voxloop.session",
                context=Context(),  # a root: one trace per conversation
                attributes={"voxloop.session.id": self.session_id, "voxloop.transport": self.transport},
            )

    @property
    def trace_id(self) -> str | None:
        """The conversation's trace id (32 hex digits), or None when it is not traced."""
        if self._span is None:
            return None
        return f"{self._span.get_span_context().trace_id:032x}"

    def ended_by_server(self, reason: str) -> None:
        """The server is ending this session (a drain): the fatal error it sends is not a failure."""
        self._server_reason = reason

    def ended(self, error: BaseException | None = None) -> None:
        failure = repr(error) if error is not None else self.fatal_error
        if self._metrics is not None:
            self._metrics.sessions_live.labels(self.transport).dec()
            self._metrics.sessions_ended.labels(self.transport).inc()
            self._metrics.session_duration.observe(time.perf_counter() - self._started)
            if failure is not None:
                self._metrics.sessions_failed.labels(self.transport, "run").inc()
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_attribute("voxloop.session.turns", self.turn_count)
            if error is not None:
                self._span.record_exception(error)
            if failure is not None:
                self._span.set_status(Status(StatusCode.ERROR, failure))
            self._span.end()
            self._span = None

    # -- the observer's sink ---------------------------------------------------------------------------

    def turn_finished(self, turn: Turn) -> None:
        self.turn_count += 1
        if self._metrics is not None:
            self._metrics.turns.inc()
            total = turn.voice_to_voice_ns()
            if total is not None:
                self._metrics.voice_to_voice.observe(total / 1e9)
        if self._tracer is not None and self._span is not None:
            self._trace_turn(turn)

    def interval_finished(self, interval: Interval) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        if interval.kind == "stt":
            metrics.stt_latency.observe(interval.duration_ns / 1e9)
        elif interval.kind == "function":
            name = str(interval.attributes.get("gen_ai.tool.name", ""))
            outcome = (
                "ok"
                if interval.error is None
                else ("cancelled" if interval.error == "cancelled" else "error")
            )
            metrics.function_calls.labels(name, outcome).inc()
            metrics.function_call_duration.labels(name).observe(interval.duration_ns / 1e9)

    def service_ttfb(self, service: str, model: str, seconds: float) -> None:
        if self._metrics is None:
            return
        if service == "llm":
            self._metrics.llm_ttfb.labels(model).observe(seconds)
        elif service == "tts":
            self._metrics.tts_ttfb.labels(model).observe(seconds)

    def llm_usage(self, model: str, usage: LLMTokenUsage) -> None:
        if self._metrics is not None:
            self._metrics.llm_tokens.labels(model, "input").inc(usage.prompt_tokens)
            self._metrics.llm_tokens.labels(model, "output").inc(usage.completion_tokens)

    def interruption(self) -> None:
        if self._metrics is not None:
            self._metrics.interruptions.inc()

    def error(self, frame: ErrorFrame) -> None:
        if self._server_reason is not None and frame.error == self._server_reason:
            if self._span is not None:
                self._span.set_attribute("voxloop.session.ended_by_server", frame.error)
            return
        if frame.fatal and self.fatal_error is None:
            self.fatal_error = frame.error
        if self._metrics is not None:
            self._metrics.errors.labels(str(frame.category), "true" if frame.fatal else "false").inc()
        if self._span is not None:
            self._span.add_event("error", {"voxloop.error": frame.error, "voxloop.error.fatal": frame.fatal})

    # -- spans -------------------------------------------------------------------------------------------

    def _trace_turn(self, turn: Turn) -> None:
        from opentelemetry.trace import Status, StatusCode, set_span_in_context

        assert self._tracer is not None and self._span is not None
        epoch = self._offset_ns
        span = self._tracer.start_span(
            "voxloop.turn",
            context=set_span_in_context(self._span),
            start_time=turn.start_ns + epoch,
            attributes=_clean(turn.attributes()),
        )
        for message, at in turn.errors:
            span.add_event("error", {"voxloop.error": message}, timestamp=at + epoch)
        parent = set_span_in_context(span)
        for interval in turn.intervals:
            attrs = dict(interval.attributes)
            name = interval.name
            if interval.kind == "llm" and "gen_ai.request.model" in attrs:
                name = f"chat {attrs['gen_ai.request.model']}"
            child = self._tracer.start_span(
                name, context=parent, start_time=interval.start_ns + epoch, attributes=_clean(attrs)
            )
            for event, at in interval.events:
                child.add_event(event, timestamp=at + epoch)
            if interval.error is not None:
                child.set_status(Status(StatusCode.ERROR, interval.error))
                child.set_attribute("error.type", "cancelled" if interval.error == "cancelled" else "error")
            child.end(end_time=max(interval.end_ns, interval.start_ns) + epoch)
        span.end(end_time=turn.end_ns + epoch)


def _clean(attrs: dict[str, Any]) -> dict[str, str | int | float | bool]:
    return {k: v for k, v in attrs.items() if isinstance(v, str | int | float | bool)}
