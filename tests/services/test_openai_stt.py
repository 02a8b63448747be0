"""OpenAISTTService through the real `openai` SDK against OpenAITestServer (requests checked by SDK types)."""

from __future__ import annotations

import io
import wave

import httpx
import openai
import pytest

from helpers.paths import AUDIO
from voxloop.frames import (
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    MetricsFrame,
    STTUpdateSettingsFrame,
    STTUsageMetricsData,
    TranscriptionFinishedFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from voxloop.pipeline import PipelineParams
from voxloop.services.openai import OpenAISTTService
from voxloop.services.openai.stt import pcm_to_wav
from voxloop.testing import PipelineHarness, load_wav
from voxloop.testing.openai_server import OpenAITestServer

RATE = 16000
CHUNK = 320


def segment(name: str | None = None, seconds: float = 0.5) -> list[Frame]:
    """VAD start, the clip (or silence) in 20 ms frames, VAD stop."""
    pcm = load_wav(AUDIO / f"{name}.wav")[0] if name else b"\x00\x00" * round(seconds * RATE)
    frames: list[Frame] = [VADUserStartedSpeakingFrame(start_secs=0.2)]
    frames += [
        InputAudioRawFrame(audio=pcm[i : i + CHUNK * 2], sample_rate=RATE, num_channels=1)
        for i in range(0, len(pcm), CHUNK * 2)
    ]
    frames.append(VADUserStoppedSpeakingFrame(stop_secs=0.3))
    return frames


def service(server: OpenAITestServer, **kwargs: object) -> OpenAISTTService:
    return OpenAISTTService(api_key="test-key", base_url=server.base_url, **kwargs)  # type: ignore[arg-type]


async def test_scripted_transcripts_in_order_and_valid_requests(no_leaked_tasks: None) -> None:
    async with OpenAITestServer() as server:
        server.script["transcriptions"] = ["First words.", "Second words."]
        stt = service(server, prompt="Names: Alice.")
        async with PipelineHarness(stt) as h:
            await h.push(*segment(seconds=0.4), *segment(seconds=0.6))
            await h.down_recorder.wait_for(TranscriptionFinishedFrame, count=2)
    assert server.invalid_requests == []
    assert [f.text for f in h.down_recorder.of_type(TranscriptionFrame)] == ["First words.", "Second words."]
    assert len(server.requests) == 2
    body = server.requests[0].body
    assert body["model"] == "gpt-4o-mini-transcribe"
    assert body["language"] == "en" and body["prompt"] == "Names: Alice."
    assert body["file"]["filename"] == "audio.wav"
    assert server.requests[0].headers["authorization"] == "Bearer test-key"
    # the second upload holds its 0.6 s plus, as pre-roll, the 0.4 s of audio before it (of the 0.5 s kept)
    sizes = [r.body["file"]["size"] for r in server.requests]
    assert sizes == [44 + 2 * round(0.4 * RATE), 44 + 2 * round(1.0 * RATE)]


async def test_real_audio_is_transcribed_by_the_server() -> None:
    async with OpenAITestServer() as server:
        stt = service(server)
        async with PipelineHarness(stt) as h:
            await h.push(*segment("utt03_order"))
            await h.down_recorder.wait_for(TranscriptionFinishedFrame, timeout=60)
    assert server.invalid_requests == []
    text = h.down_recorder.of_type(TranscriptionFrame)[0].text.lower()
    assert "alice" in text and "order" in text


async def test_server_error_is_reported_and_the_next_segment_works(no_leaked_tasks: None) -> None:
    async with OpenAITestServer() as server:
        server.script["transcriptions"] = [{"status": 400, "message": "audio too short"}, "Still here."]
        stt = service(server)
        async with PipelineHarness(stt) as h:
            await h.push(*segment(seconds=0.3))
            first = await h.down_recorder.wait_for(TranscriptionFinishedFrame)
            assert first.text == ""
            await h.push(*segment(seconds=0.3))
            await h.down_recorder.wait_for(TranscriptionFinishedFrame, count=2)
    errors = [f for f in h.up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1 and "audio too short" in errors[0].error
    assert isinstance(errors[0].exception, openai.BadRequestError)
    assert [f.text for f in h.down_recorder.of_type(TranscriptionFrame)] == ["Still here."]
    assert server.invalid_requests == []


async def test_wrong_key_gives_an_error_not_a_crash() -> None:
    async with OpenAITestServer(api_key="right") as server:
        stt = OpenAISTTService(api_key="wrong", base_url=server.base_url)
        async with PipelineHarness(stt) as h:
            await h.push(*segment(seconds=0.3))
            finished = await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    assert finished.text == ""
    errors = [f for f in h.up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1 and isinstance(errors[0].exception, openai.AuthenticationError)


async def test_slow_server_does_not_hold_audio_back() -> None:
    async with OpenAITestServer() as server:
        server.script["transcriptions"] = [{"text": "Slow answer.", "delay": 0.5}]
        stt = service(server)
        async with PipelineHarness(stt) as h:
            await h.push(*segment(seconds=0.3))
            await h.down_recorder.wait_for(VADUserStoppedSpeakingFrame)
            later = [
                InputAudioRawFrame(audio=b"\x00\x00" * CHUNK, sample_rate=RATE, num_channels=1)
                for _ in range(5)
            ]
            await h.push(*later)
            transcription = await h.down_recorder.wait_for(TranscriptionFrame)
    assert h.down.index(later[-1]) < h.down.index(transcription)


async def test_settings_update_and_usage_metrics() -> None:
    async with OpenAITestServer() as server:
        server.script["transcriptions"] = ["Bonjour."]
        stt = service(server)
        params = PipelineParams(enable_metrics=True, enable_usage_metrics=True)
        async with PipelineHarness(stt, params=params) as h:
            await h.push(
                STTUpdateSettingsFrame(settings={"language": "fr", "model": "whisper-1", "prompt": "Salut"})
            )
            await h.push(*segment(seconds=0.5))
            await h.down_recorder.wait_for(TranscriptionFinishedFrame)
    body = server.requests[0].body
    assert (body["language"], body["model"], body["prompt"]) == ("fr", "whisper-1", "Salut")
    assert h.down_recorder.of_type(TranscriptionFrame)[0].language == "fr"
    usage = [
        d for f in h.down_recorder.of_type(MetricsFrame) for d in f.data if isinstance(d, STTUsageMetricsData)
    ]
    assert len(usage) == 1 and usage[0].model == "whisper-1"
    assert usage[0].audio_seconds == pytest.approx(0.5)
    assert server.invalid_requests == []


async def test_server_rejects_invalid_requests_with_openai_errors() -> None:
    wav = pcm_to_wav(b"\x00\x00" * 1600, RATE)
    async with OpenAITestServer() as server:
        headers = {"authorization": "Bearer test-key"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
            no_model = await client.post("/audio/transcriptions", files={"file": ("a.wav", wav, "audio/wav")})
            bad_format = await client.post(
                "/audio/transcriptions",
                files={"file": ("a.wav", wav, "audio/wav")},
                data={"model": "whisper-1", "response_format": "mp3"},
            )
            not_audio = await client.post(
                "/audio/transcriptions", files={"file": ("a.txt", b"hi", "text/plain")}, data={"model": "m"}
            )
            broken_wav = await client.post(
                "/audio/transcriptions",
                files={"file": ("a.wav", b"RIFFxx", "audio/wav")},
                data={"model": "m"},
            )
            unknown = await client.post(
                "/audio/transcriptions",
                files={"file": ("a.wav", wav, "audio/wav")},
                data={"model": "m", "speed": "2"},
            )
    for response in (no_model, bad_format, not_audio, broken_wav, unknown):
        assert response.status_code == 400
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert len(server.invalid_requests) == 5
    assert "model" in server.invalid_requests[0].problem  # type: ignore[operator]
    assert "response_format" in server.invalid_requests[1].problem  # type: ignore[operator]
    assert "speed" in server.invalid_requests[4].problem  # type: ignore[operator]


async def test_server_answers_text_format_and_usage_from_sdk_models() -> None:
    pcm = load_wav(AUDIO / "utt02_timer.wav")[0]
    async with OpenAITestServer() as server:
        server.script["transcriptions"] = ["Plain.", "Json."]
        client = openai.AsyncOpenAI(api_key="test-key", base_url=server.base_url)
        try:
            text = await client.audio.transcriptions.create(
                file=("a.wav", pcm_to_wav(pcm, RATE), "audio/wav"), model="whisper-1", response_format="text"
            )
            result = await client.audio.transcriptions.create(
                file=("a.wav", pcm_to_wav(pcm, RATE), "audio/wav"),
                model="gpt-4o-mini-transcribe",
                include=["logprobs"],
                temperature=0.0,
            )
        finally:
            await client.close()
    assert text.strip() == "Plain."
    assert result.text == "Json."
    assert result.usage is not None and result.usage.type == "duration"
    assert result.usage.seconds == pytest.approx(len(pcm) / 2 / RATE, abs=0.01)
    assert server.invalid_requests == []


def test_pcm_to_wav_round_trips() -> None:
    pcm = bytes(range(200))
    with wave.open(io.BytesIO(pcm_to_wav(pcm, 8000)), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.readframes(wav.getnframes()) == pcm
