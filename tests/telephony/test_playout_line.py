"""The emulators' playout line: what it records about the bot's audio timing (arrivals, pauses)."""

from __future__ import annotations

import asyncio

import pytest

from voxloop.testing.telephony import PlayoutLine

pytestmark = pytest.mark.timeout(10)

FRAME = bytes(160)  # 20 ms of 8 kHz G.711


async def _no_ack(_name: str) -> None:
    return None


async def test_arrivals_and_a_pause_between_two_played_frames() -> None:
    line = PlayoutLine(8000, lambda b: bytes(2 * len(b)), _no_ack)
    line.start()
    try:
        loop = asyncio.get_running_loop()
        before = loop.time()
        line.receive_audio(FRAME)
        await line.wait_until(lambda: line.played_bytes == 160)
        first_tick = line.ticks
        await line.wait_until(lambda: line.ticks >= first_tick + 3)  # three ticks with nothing to play
        line.receive_audio(FRAME + FRAME)
        await line.wait_until(lambda: line.played_bytes == 320)
        second_tick, resumed_at = line.ticks, line.last_played_at
        await line.wait_until(lambda: line.played_bytes == 480)
    finally:
        await line.stop()
    assert [sent for _, sent in line.arrivals] == [160, 480]
    assert before <= line.arrivals[0][0] <= line.arrivals[1][0] <= loop.time()
    # one pause: the empty ticks between the first frame and the second; none between the back-to-back two
    assert line.pauses == [(resumed_at, second_tick - first_tick - 1)]
    assert line.pauses[0][1] >= 3
    assert line.starved_frames == 0  # no mark was pending, so no reply was under way


async def test_no_pause_before_the_first_frame_or_after_the_last() -> None:
    line = PlayoutLine(8000, lambda b: bytes(2 * len(b)), _no_ack)
    line.start()
    try:
        await line.wait_until(lambda: line.ticks >= 3)  # idle before anything is sent
        line.receive_audio(FRAME)
        await line.wait_until(lambda: line.played_bytes == 160)
        played_tick = line.ticks
        await line.wait_until(lambda: line.ticks >= played_tick + 3)
    finally:
        await line.stop()
    assert line.pauses == []
