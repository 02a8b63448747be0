"""Text a client hands the LLM or the voice is bounded per message: over the limit, a clear refusal."""

from __future__ import annotations

from helpers.rtvi import RTVISession
from voxloop.frames import InterruptionFrame, LLMMessagesAppendFrame, TTSSpeakFrame
from voxloop.pipeline import FrameProcessor
from voxloop.rtvi import RTVIProcessor
from voxloop.rtvi.protocol import DEFAULT_MAX_TEXT_CHARS


class Speaker(FrameProcessor):
    speaks_text = True  # offers the tts:say action to 0.x clients


def limited(chars: int | None) -> RTVIProcessor:
    return RTVIProcessor(client_ready_timeout_secs=None, max_text_chars=chars)


async def test_send_text_over_the_limit_is_refused_before_any_work_and_the_session_goes_on() -> None:
    async with RTVISession(limited(10)) as s:
        await s.ready()
        await s.request("send-text", {"content": "x" * 11, "options": {}}, id="long0001")
        refused = await s.wait_for_message("error-response")
        await s.request("send-text", {"content": "x" * 10, "options": {}}, id="fits0001")
        append = await s.harness.down_recorder.wait_for(LLMMessagesAppendFrame)
    assert refused["id"] == "long0001"
    assert refused["data"]["error"] == (
        "Invalid message: send-text: the text has 11 characters, more than the limit of 10"
    )
    assert append.messages == [{"role": "user", "content": "x" * 10}]
    assert len(s.down(LLMMessagesAppendFrame)) == 1
    assert len(s.down(InterruptionFrame)) == 1  # only the accepted text interrupted the bot


async def test_append_to_context_counts_the_text_of_content_parts() -> None:
    parts = [{"type": "text", "text": "y" * 6}, {"type": "image_url", "image_url": {"url": "z" * 50}}]
    async with RTVISession(limited(10)) as s:
        await s.ready("1.0.0")
        await s.request("append-to-context", {"role": "user", "content": parts * 2}, id="parts001")
        refused = await s.wait_for_message("error-response")
        await s.request("append-to-context", {"role": "user", "content": parts}, id="parts002")
        append = await s.harness.down_recorder.wait_for(LLMMessagesAppendFrame)
    assert refused["id"] == "parts001" and "12 characters" in refused["data"]["error"]
    assert append.messages == [{"role": "user", "content": parts}]


async def test_tts_say_is_bounded_too() -> None:
    async with RTVISession(limited(10), Speaker()) as s:
        await s.ready("0.3.0")
        say = {"service": "tts", "action": "say", "arguments": [{"name": "text", "value": "z" * 11}]}
        await s.request("action", say, id="say00001")
        refused = await s.wait_for_message("error-response")
    assert refused["id"] == "say00001" and "more than the limit of 10" in refused["data"]["error"]
    assert s.down(TTSSpeakFrame) == []


async def test_the_default_limit_is_generous_for_chat_and_none_lifts_it() -> None:
    assert DEFAULT_MAX_TEXT_CHARS == 16_384
    async with RTVISession(RTVIProcessor(client_ready_timeout_secs=None)) as s:
        await s.ready()
        await s.request("send-text", {"content": "a" * 16_385, "options": {}}, id="over0001")
        await s.wait_for_message("error-response")
        await s.request("send-text", {"content": "a" * 16_384, "options": {}}, id="fits0001")
        await s.harness.down_recorder.wait_for(LLMMessagesAppendFrame)
    async with RTVISession(limited(None)) as s:
        await s.ready()
        await s.request("send-text", {"content": "b" * 100_000, "options": {}}, id="free0001")
        append = await s.harness.down_recorder.wait_for(LLMMessagesAppendFrame)
    assert len(append.messages[0]["content"]) == 100_000
