"""docs/operations.md and the Grafana dashboard stay true to the metrics the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from voxloop.telemetry.metrics import GatewayMetrics, ServerMetrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
SUFFIXES = re.compile(r"_(total|bucket|count|sum)$")


def exported() -> set[str]:
    """voxloop's own metric families, of workers and of gateways."""
    registry = CollectorRegistry()
    ServerMetrics(registry)
    GatewayMetrics(registry)
    return {family.name for family in registry.collect()}


def test_the_dashboard_queries_only_metrics_that_exist_and_shows_every_one() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queried = {SUFFIXES.sub("", name) for expr in exprs for name in re.findall(r"voxloop_[a-z_]+", expr)}
    assert queried == exported()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_operations_page_explains_every_metric() -> None:
    page = (DOCS / "operations.md").read_text()
    documented = {SUFFIXES.sub("", name) for name in re.findall(r"`(voxloop_[a-z_]+)`", page)}
    assert exported() <= documented
