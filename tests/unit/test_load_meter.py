"""A worker's load figure is its share of what its container may use (cgroup limits), not of the host."""

from __future__ import annotations

from pathlib import Path

from voxloop.cluster.registry import LoadMeter, _rss_bytes


def test_the_container_limits_are_the_whole(tmp_path: Path) -> None:
    limit = 4 * _rss_bytes()  # this process then uses a quarter of its "container's" memory
    (tmp_path / "memory.max").write_text(f"{limit}\n")
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a core
    meter = LoadMeter(cgroup=tmp_path)
    assert meter.cores == 0.5
    assert meter.memory_bytes == limit
    assert 0.2 <= meter.sample() <= 1.0  # at least the memory share


def test_no_limit_means_the_machine(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "cpu.max").write_text("max 100000\n")
    host = LoadMeter(cgroup=tmp_path / "none")
    meter = LoadMeter(cgroup=tmp_path)
    assert (meter.cores, meter.memory_bytes) == (host.cores, host.memory_bytes)
    assert meter.memory_bytes > 4 * _rss_bytes() and meter.cores >= 1
