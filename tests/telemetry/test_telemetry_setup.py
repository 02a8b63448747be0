"""Turning telemetry on: tracing only when the environment asks, the event-loop lag monitor, the extras."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from voxloop.telemetry import Telemetry, record_model_load
from voxloop.telemetry.metrics import EventLoopLagMonitor, ServerMetrics, process_metrics
from voxloop.telemetry.tracing import tracing_configured

OTEL = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in OTEL:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_tracing_is_off_unless_an_otlp_endpoint_is_configured(clean_env: pytest.MonkeyPatch) -> None:
    telemetry = Telemetry.from_environment()
    assert telemetry.tracer is None and not tracing_configured()
    assert telemetry.metrics is process_metrics()  # metrics are on whenever prometheus-client is there
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing_configured()
    traced = Telemetry.from_environment()
    assert traced.tracer is not None
    traced.shutdown()  # nothing was recorded, so nothing is sent
    clean_env.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing_configured()
    clean_env.delenv("OTEL_SDK_DISABLED")
    clean_env.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing_configured()
    clean_env.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    clean_env.delenv("OTEL_TRACES_EXPORTER")
    clean_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    assert tracing_configured()


def test_without_metrics_or_tracer_a_session_watches_nothing() -> None:
    assert not Telemetry().enabled
    assert Telemetry(ServerMetrics(CollectorRegistry())).enabled


async def test_the_lag_monitor_measures_how_late_a_blocked_loop_woke_its_timer() -> None:
    registry = CollectorRegistry()
    monitor = EventLoopLagMonitor(ServerMetrics(registry).event_loop_lag, interval=0.01)
    monitor.start()
    await asyncio.sleep(0)  # one loop turn: the monitor is now waiting on its 10 ms timer
    busy_until = time.perf_counter() + 0.15  # CPU work on the loop, what the monitor exists to catch
    while time.perf_counter() < busy_until:
        pass
    await asyncio.wait_for(monitor.measured.wait(), 5)
    await monitor.stop()
    assert monitor.last_lag_secs >= 0.1
    assert registry.get_sample_value("voxloop_event_loop_lag_seconds_count") == 1
    assert registry.get_sample_value("voxloop_event_loop_lag_seconds_bucket", {"le": "0.1"}) == 0


def test_model_load_times_are_exported() -> None:
    record_model_load("whisper-test", 1.25)
    text = process_metrics().render().decode()
    assert 'voxloop_model_load_seconds{model="whisper-test"} 1.25' in text
