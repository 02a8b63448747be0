"""The cluster tests need Debian's redis-server (`make cluster-deps`); each test starts its own.

Whatever a test does or fails to do, it leaves no redis-server or voxloop process behind: what it
started and did not stop is killed after it (and a test that passed with processes left running
is an error), and whatever a module's fixture left is killed at the end of the session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from helpers.cluster import STARTED, RedisProcess, kill_left_behind


@pytest.fixture(autouse=True)
def no_process_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    before = set(STARTED)
    yield
    left = kill_left_behind(STARTED - before)
    report = getattr(request.node, "rep_call", None)
    if left and report is not None and report.passed:
        pytest.fail(f"the test left {left} process(es) running (killed now)")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]  # read by no_process_left_behind
    return report


@pytest.fixture(scope="session", autouse=True)
def nothing_left_at_the_end() -> Iterator[None]:
    yield
    kill_left_behind(set(STARTED))  # what a module's fixture left, if it failed half-way


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
