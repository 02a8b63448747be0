"""Seeing production: Prometheus metrics, OpenTelemetry traces, and log lines per session.

The server gives every session a :class:`SessionTelemetry` (from the process's :class:`Telemetry`),
whose :class:`TurnObserver` follows the conversation's turns. Metrics need the ``telemetry`` extra
(``prometheus-client``), traces need it too (``opentelemetry-sdk`` and the OTLP exporter) and are off
unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; this package imports without either. What every metric
and span means: docs/operations.md.
"""

from __future__ import annotations

import importlib.util

from ._session import SessionTelemetry, Telemetry
from ._turns import Interval, Turn
from .logs import configure_logging, redact, session_id, trace_id
from .observer import TurnObserver

__all__ = [
    "Interval",
    "SessionTelemetry",
    "Telemetry",
    "Turn",
    "TurnObserver",
    "configure_logging",
    "record_model_load",
    "redact",
    "session_id",
    "trace_id",
]


def record_model_load(model: str, seconds: float) -> None:
    """Note how long a shared model took to load (a no-op without prometheus-client)."""
    if importlib.util.find_spec("prometheus_client") is None:
        return
    from .metrics import process_metrics

    process_metrics().model_load.labels(model).set(seconds)
