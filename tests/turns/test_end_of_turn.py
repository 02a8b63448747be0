"""The end-of-turn detectors: Smart Turn with the words as a veto, and the protocol a custom judge meets."""

from __future__ import annotations

import asyncio

import pytest

from helpers.speech import silence, spoken
from voxloop.turns import EndOfTurnDetector, SmartTurnDetector
from voxloop.turns.end_of_turn import words_go_on


@pytest.mark.parametrize(
    ("text", "goes_on"),
    [
        ("I'd like a table for", True),
        ("turn off the lights and...", True),
        ("Can you tell me,", True),
        ("Um", True),
        ("", True),
        ("What time is it?", False),
        ("Turn off the lights in the kitchen.", False),
    ],
)
def test_words_that_plainly_go_on(text: str, goes_on: bool) -> None:
    assert words_go_on(text) is goes_on


def done(text: str) -> asyncio.Future[str]:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    future.set_result(text)
    return future


async def test_smart_turn_says_done_only_when_the_sound_and_the_words_agree(speech_workers) -> None:
    detector = SmartTurnDetector()
    assert isinstance(detector, EndOfTurnDetector)
    finished = await spoken("four people tonight.") + silence(0.2)  # the model scores this 0.9+
    filler = await spoken("Tell me, um,") + silence(0.2)  # and this 0.01
    assert await detector.turn_is_complete(finished, 16000, done("Four people tonight."))
    assert detector.last_probability is not None and detector.last_probability > 0.8
    assert not await detector.turn_is_complete(filler, 16000, done("Tell me."))  # the sound says no
    assert not await detector.turn_is_complete(finished, 16000, done("Four people and"))  # the words say no
    with pytest.raises(ValueError, match="16 kHz"):
        await detector.turn_is_complete(finished, 8000, done(""))
