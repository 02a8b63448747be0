"""OpenTelemetry tracing, off unless configured the standard way.

:func:`tracer_from_environment` returns a tracer exporting over OTLP/HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (the exporter reads
the other ``OTEL_EXPORTER_OTLP_*`` variables itself; ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` name the service), and None otherwise, or when ``OTEL_SDK_DISABLED`` is
true or ``OTEL_TRACES_EXPORTER`` is ``none``. With None, no span is ever created.
"""

from __future__ import annotations

import logging
import os

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

from .. import __version__

__all__ = ["TRACER_NAME", "tracer_from_environment", "tracing_configured"]

logger = logging.getLogger("voxloop.telemetry")

TRACER_NAME = "voxloop"


def tracing_configured() -> bool:
    """True when the environment asks for traces (see the module docstring)."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def tracer_from_environment() -> tuple[Tracer, TracerProvider] | None:
    """A tracer exporting over OTLP/HTTP with its provider (shut it down on exit), or None."""
    if not tracing_configured():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "voxloop")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    logger.info("tracing on: OTLP/HTTP to %s", _endpoint())
    return provider.get_tracer(TRACER_NAME, __version__), provider


def _endpoint() -> str:
    env = os.environ
    return env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
