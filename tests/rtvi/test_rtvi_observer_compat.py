"""The observer as older bots and clients use it: an RTVIObserver the app adds to the task itself,
``bot-transcription`` for the clients before 2.0, the deprecated ``errors_enabled`` setting."""

from __future__ import annotations

import pytest

from helpers.rtvi import RTVISession
from voxloop.frames import (
    ErrorFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    UserStartedSpeakingFrame,
)
from voxloop.rtvi import RTVIObserver, RTVIObserverParams, RTVIProcessor


async def test_an_observer_added_to_the_task_is_used_instead_of_a_second_one() -> None:
    rtvi = RTVIProcessor(client_ready_timeout_secs=None)
    theirs = RTVIObserver(rtvi, RTVIObserverParams(bot_llm_enabled=False))
    async with RTVISession(rtvi, observers=[theirs]) as s:
        await s.ready()
        await s.harness.push(UserStartedSpeakingFrame(), LLMTextFrame("not wanted by the app"))
        await s.harness.end()
        assert rtvi.observer is theirs
        assert [o for o in s.harness.task.observers if isinstance(o, RTVIObserver)] == [theirs]
    assert [m["type"] for m in s.messages] == ["bot-ready", "user-started-speaking"]


async def test_an_observer_added_to_the_running_task_takes_over_from_ours() -> None:
    rtvi = RTVIProcessor(client_ready_timeout_secs=None)
    theirs = RTVIObserver(rtvi, RTVIObserverParams(bot_llm_enabled=False))
    async with RTVISession(rtvi) as s:
        await s.ready()
        ours = rtvi.observer
        s.harness.task.add_observer(theirs)
        await s.harness.push(UserStartedSpeakingFrame(), LLMTextFrame("not wanted by the app"))
        await s.harness.end()
        assert rtvi.observer is theirs and ours is not theirs
        assert [o for o in s.harness.task.observers if isinstance(o, RTVIObserver)] == [theirs]
    assert [m["type"] for m in s.messages] == ["bot-ready", "user-started-speaking"]


async def test_an_observer_of_another_processor_does_not_replace_ours() -> None:
    rtvi = RTVIProcessor(client_ready_timeout_secs=None)
    other = RTVIObserver(RTVIProcessor(), RTVIObserverParams())
    async with RTVISession(rtvi, observers=[other]) as s:
        await s.harness.push(UserStartedSpeakingFrame())
        await s.wait_for_message("user-started-speaking")
        assert rtvi.observer is not other
    assert len(s.of_type("user-started-speaking")) == 1


async def say(s: RTVISession, *pieces: str) -> None:
    await s.harness.push(LLMFullResponseStartFrame(), *(LLMTextFrame(p) for p in pieces))
    await s.harness.push(LLMFullResponseEndFrame())


@pytest.mark.parametrize("version", ["1.0.0", "0.3.0"])
async def test_older_clients_get_the_llm_text_sentence_by_sentence(version: str) -> None:
    async with RTVISession() as s:
        await s.ready(version)
        await say(s, "Hello", " there.", " How are", " you? Fine", " thanks")
        await say(s, "Cut", " off")
        await s.harness.push(InterruptionFrame())
        await say(s, "Again.")
        await s.harness.end()
    assert [m["data"]["text"] for m in s.of_type("bot-transcription")] == [
        "Hello there.",
        "How are you?",
        "Fine thanks",  # the end of the response ends the last sentence
        "Cut off",
        "Again.",
    ]


async def test_an_interruption_drops_the_unfinished_sentence() -> None:
    async with RTVISession() as s:
        await s.ready("1.0.0")
        await s.harness.push(LLMFullResponseStartFrame(), LLMTextFrame("Never"), LLMTextFrame(" finished"))
        await s.harness.push(InterruptionFrame())
        await s.harness.push(LLMTextFrame("New."), LLMFullResponseEndFrame())
        await s.harness.end()
    assert [m["data"]["text"] for m in s.of_type("bot-transcription")] == ["New."]


async def test_current_clients_get_no_bot_transcription_nor_do_older_ones_with_llm_text_off() -> None:
    async with RTVISession() as s:
        await s.ready("2.1.0")
        await say(s, "Hello there.")
        await s.harness.end()
    assert s.of_type("bot-transcription") == [] and len(s.of_type("bot-llm-text")) == 1
    params = RTVIObserverParams(bot_llm_enabled=False)
    async with RTVISession(RTVIProcessor(observer_params=params, client_ready_timeout_secs=None)) as s:
        await s.ready("1.0.0")
        await say(s, "Hello there.")
        await s.harness.end()
    assert s.of_type("bot-transcription") == []


async def test_the_deprecated_errors_setting_still_turns_errors_off() -> None:
    with pytest.warns(DeprecationWarning):
        params = RTVIObserverParams(errors_enabled=False)
    async with RTVISession(RTVIProcessor(observer_params=params, client_ready_timeout_secs=None)) as s:
        await s.harness.push_up(ErrorFrame("quiet"))
        await s.harness.up_recorder.wait_for(ErrorFrame)
        await s.harness.end()
    assert s.of_type("error") == [] and not s.rtvi.errors_enabled
