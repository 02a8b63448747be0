"""Shared test helpers."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture
async def no_leaked_tasks():
    """Asserts that a test leaves no task of its own running behind it."""
    before = set(asyncio.all_tasks())
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and t is not current]
    assert not leaked, f"leaked tasks: {[t.get_name() for t in leaked]}"


@pytest.fixture
async def speech_workers(no_leaked_tasks):
    """For tests that speak: the process-wide speech workers are closed before the leak check."""
    from voxloop.services.local import close_speech_workers

    yield
    await close_speech_workers()
