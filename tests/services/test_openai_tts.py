"""OpenAITTSService against the local OpenAI-compatible test server, with the real SDK."""

from __future__ import annotations

import numpy as np
import pytest

openai = pytest.importorskip("openai")

from voxloop.frames import (  # noqa: E402
    ErrorFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    TTSUpdateSettingsFrame,
)
from voxloop.services.local import close_speech_workers  # noqa: E402
from voxloop.services.openai import OpenAITTSService  # noqa: E402
from voxloop.testing.openai_server import OpenAITestServer  # noqa: E402


def response(text: str) -> list:
    return [LLMFullResponseStartFrame(), LLMTextFrame(text), LLMFullResponseEndFrame()]


async def test_streams_pcm_per_sentence(no_leaked_tasks) -> None:
    from voxloop.testing import run_test

    async with OpenAITestServer() as server:
        tts = OpenAITTSService(api_key="test-key", base_url=server.base_url, voice="coral", speed=1.25)
        down, up = await run_test(tts, response("Hello there. How are you?"))
    assert up == []
    assert server.invalid_requests == []
    bodies = [r.body for r in server.requests]
    assert [b["input"] for b in bodies] == ["Hello there.", "How are you?"]
    assert all(b["response_format"] == "pcm" and b["voice"] == "coral" and b["speed"] == 1.25 for b in bodies)
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert {f.sample_rate for f in audio} == {24000}
    assert len(audio) > 2  # streamed in pieces, not one blob
    total = sum(f.num_frames for f in audio)
    expected = sum(int(24000 * 0.06 * len(t) / 1.25) for t in ("Hello there.", "How are you?"))
    assert total == expected
    assert [f.text for f in down if isinstance(f, TTSTextFrame)] == ["Hello there.", "How are you?"]
    assert isinstance(down[1], TTSStartedFrame) and isinstance(down[-2], TTSStoppedFrame)


async def test_server_error_is_reported_and_next_sentence_is_spoken(no_leaked_tasks) -> None:
    from voxloop.testing import run_test

    async with OpenAITestServer() as server:
        server.script["speech"] = [{"status": 400, "message": "boom"}]  # 5xx would be retried by the SDK
        tts = OpenAITTSService(api_key="test-key", base_url=server.base_url)
        down, up = await run_test(tts, response("First fails. Second works."))
    assert server.invalid_requests == []
    assert len(up) == 1 and isinstance(up[0], ErrorFrame) and "boom" in up[0].error
    assert [f.text for f in down if isinstance(f, TTSTextFrame)] == ["Second works."]


async def test_settings_update_and_delay(no_leaked_tasks) -> None:
    from voxloop.testing import run_test

    async with OpenAITestServer() as server:
        server.script["speech"] = [{"delay": 0.05}]
        tts = OpenAITTSService(api_key="test-key", base_url=server.base_url)
        await run_test(
            tts,
            [
                *response("One."),
                TTSUpdateSettingsFrame(settings={"voice": "nova", "model": "tts-1"}),
                *response("Two."),
            ],
        )
    assert server.invalid_requests == []
    assert [(r.body["voice"], r.body["model"]) for r in server.requests] == [
        ("alloy", "gpt-4o-mini-tts"),
        ("nova", "tts-1"),
    ]


async def test_server_validates_requests_with_the_sdk_types() -> None:
    import httpx

    async with OpenAITestServer() as server:
        headers = {"authorization": "Bearer test-key"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
            bad = await http.post("/audio/speech", json={"model": "tts-1", "input": "hi", "voice": 3})
            unknown = await http.post(
                "/audio/speech", json={"model": "tts-1", "input": "hi", "voice": "a", "x": 1}
            )
            slow = await http.post(
                "/audio/speech", json={"model": "tts-1", "input": "hi", "voice": "a", "speed": 9}
            )
            denied = await http.post("/audio/speech", json={}, headers={"authorization": "Bearer nope"})
    assert bad.status_code == unknown.status_code == slow.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    assert denied.status_code == 401
    assert len(server.invalid_requests) == 3
    assert "unknown parameters: x" in (server.invalid_requests[1].problem or "")


async def test_espeak_rendered_speech_from_the_server(no_leaked_tasks) -> None:
    async with OpenAITestServer() as server:
        server.script["speech_engine"] = "espeak"
        client = openai.AsyncOpenAI(api_key="test-key", base_url=server.base_url)
        async with client.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="alloy", input="Hello from espeak.", response_format="pcm"
        ) as answer:
            pcm = b"".join([chunk async for chunk in answer.iter_bytes()])
        await client.close()
        await close_speech_workers()
    assert server.invalid_requests == []
    samples = np.frombuffer(pcm, dtype=np.int16)
    assert 0.8 < len(samples) / 24000 < 4.0 and np.abs(samples).max() > 2000
