"""OpenAIRealtimeService against the Realtime emulator: session, conversation, audio, transcripts, metrics."""

from __future__ import annotations

import base64
import re

import pytest

pytest.importorskip("openai")

from test_realtime_service_support import (
    appended_bytes,
    audio_frames,
    running_service,
    speech_16k,
    spoken_text,
)

from voxloop.context import FunctionSchema, LLMContext
from voxloop.frames import (
    ErrorFrame,
    InputImageRawFrame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    LLMUpdateSettingsFrame,
    MetricsFrame,
    TranscriptionFinishedFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from voxloop.frames.metrics import LLMUsageMetricsData, TTFBMetricsData
from voxloop.services.openai import InputTranscription, RealtimeSettings, SemanticVAD
from voxloop.services.stt import iso8601_now
from voxloop.testing.realtime_emulator import RealtimeEmulator

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_leaked_tasks")]

ISO8601_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
WEATHER = FunctionSchema(
    name="get_weather",
    description="The weather in a city.",
    properties={"city": {"type": "string"}},
    required=["city"],
)


async def test_session_is_configured_from_settings_and_context() -> None:
    context = LLMContext(
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "clear"}'},
        ],
        tools=[WEATHER],
    )
    settings = RealtimeSettings(
        model="gpt-realtime-mini",
        voice="cedar",
        input_transcription=InputTranscription(model="whisper-1", language="en"),
        noise_reduction="near_field",
        turn_detection=SemanticVAD(eagerness="high"),
        max_output_tokens=400,
    )
    async with RealtimeEmulator() as emu, running_service(emu, context=context, settings=settings):
        conn = emu.connections[0]
        await emu.wait_until(lambda: len(conn.items) >= 4, "history items")
        assert conn.model == "gpt-realtime-mini"  # the model is in the URL
        types = [e.type for e in conn.client_events]
        assert types[0] == "session.update"
        session = conn.session
        assert session["instructions"] == "You are terse."
        assert session["audio"]["output"]["voice"] == "cedar"
        assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert session["audio"]["input"]["transcription"] == {"model": "whisper-1", "language": "en"}
        assert session["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
        assert session["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
        assert session["audio"]["input"]["turn_detection"]["eagerness"] == "high"
        assert session["max_output_tokens"] == 400
        assert [t["name"] for t in session["tools"]] == ["get_weather"]
        assert session["tools"][0]["parameters"]["required"] == ["city"]
        shapes = [(i["type"], i.get("role")) for i in conn.items]
        assert shapes == [
            ("message", "user"),
            ("message", "assistant"),
            ("function_call", None),
            ("function_call_output", None),
        ]
        assert conn.items[0]["content"][0] == {"type": "input_text", "text": "My name is Ada."}
        assert conn.items[3]["output"] == '{"sky": "clear"}'
    # Checked once the service has closed its connection: everything it sent has arrived by then.
    assert not emu.client_events_of("response.create")  # history alone asks for nothing
    emu.assert_valid()


async def test_spoken_turn_gives_transcription_audio_transcript_and_metrics() -> None:
    context = LLMContext([{"role": "system", "content": "Be brief."}])
    async with RealtimeEmulator() as emu, running_service(emu, context=context) as (service, h):
        emu.add_transcript("what is the weather like")
        emu.add_reply("It is sunny today. Enjoy it!")
        pcm = speech_16k()
        await h.push(*audio_frames(pcm))
        final = await h.up_recorder.wait_for(TranscriptionFrame)
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        await h.down_recorder.wait_for(MetricsFrame, count=3)
        # Audio in: resampled to 24 kHz and sent in batches of about 100 ms.
        await emu.wait_until(lambda: appended_bytes(emu) >= len(pcm) * 3 // 2 - 4800, "all audio appended")
        appends = emu.client_events_of("input_audio_buffer.append")
        assert len(appends) <= len(pcm) // 3200 + 2
        # The user's side goes upstream, for the user aggregator and the client.
        up = h.up
        assert final.text == "what is the weather like" and final.finalized
        assert any(isinstance(f, InterimTranscriptionFrame) for f in up)
        # Timestamps as every STT service gives them (the client's user-transcription.timestamp).
        stamps = [f.timestamp for f in up if isinstance(f, InterimTranscriptionFrame | TranscriptionFrame)]
        assert all(re.fullmatch(ISO8601_MS, stamp) for stamp in stamps), stamps
        assert re.fullmatch(ISO8601_MS, iso8601_now())
        finished = [f for f in up if isinstance(f, TranscriptionFinishedFrame)]
        assert [f.text for f in finished] == ["what is the weather like"]
        assert up.index(final) < up.index(finished[0])
        assert any(isinstance(f, VADUserStartedSpeakingFrame) for f in up)
        assert any(isinstance(f, VADUserStoppedSpeakingFrame) for f in up)
        # The bot's side goes downstream: audio at 24 kHz, the transcript as spoken text, in order.
        down = h.down
        kinds = [type(f) for f in down]
        start = kinds.index(LLMFullResponseStartFrame)
        assert kinds.index(TTSStartedFrame) > start
        assert kinds.index(TTSAudioRawFrame) > kinds.index(TTSStartedFrame)
        assert kinds.index(TTSStoppedFrame) < kinds.index(LLMFullResponseEndFrame)
        audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
        assert {(f.sample_rate, f.num_channels) for f in audio} == {(24000, 1)}
        received = sum(len(f.audio) for f in audio)
        sent = sum(
            len(base64.b64decode(e["delta"])) for e in emu.server_events_of("response.output_audio.delta")
        )
        assert received == sent
        assert spoken_text(down) == "It is sunny today. Enjoy it!"
        llm_text = [f for f in down if isinstance(f, LLMTextFrame)]
        assert "".join(f.text for f in llm_text) == "It is sunny today. Enjoy it!"
        assert not any(f.append_to_context for f in llm_text)  # the spoken text goes to the context
        # The first word's text sits after the audio that precedes it by the transport's lead.
        first_word = next(f for f in down if isinstance(f, TTSTextFrame))
        before = sum(len(f.audio) for f in down[: down.index(first_word)] if isinstance(f, TTSAudioRawFrame))
        assert before == 100 * 48
        # Metrics: TTFB from the end of speech, processing, and usage with audio and cached tokens.
        data = [d for f in down if isinstance(f, MetricsFrame) for d in f.data]
        ttfb = [d.value for d in data if isinstance(d, TTFBMetricsData) and d.value > 0]
        assert len(ttfb) == 1 and ttfb[0] < 5
        usage = next(d.value for d in data if isinstance(d, LLMUsageMetricsData) and d.value is not None)
        assert usage is not None
        record = emu.responses[0].usage
        assert usage.prompt_tokens == record["input_tokens"]
        assert usage.output_audio_tokens == record["output_token_details"]["audio_tokens"] > 0
        assert usage.input_audio_tokens == record["input_token_details"]["audio_tokens"] > 0
        assert usage.cache_read_input_tokens == record["input_token_details"]["cached_tokens"]
        assert not emu.client_events_of("response.create")  # the server VAD answered by itself
        assert service.connected
    emu.assert_valid()


async def test_text_modality_gives_llm_text_for_the_context() -> None:
    settings = RealtimeSettings(modality="text")
    context = LLMContext([{"role": "system", "content": "Write."}])
    async with RealtimeEmulator() as emu, running_service(emu, context=context, settings=settings) as (_, h):
        emu.add_reply("Plain words here.")
        context.add_message({"role": "user", "content": "Say something."})
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        texts = [f for f in h.down if isinstance(f, LLMTextFrame)]
        assert "".join(f.text for f in texts) == "Plain words here."
        assert all(f.append_to_context for f in texts)
        assert not any(isinstance(f, TTSAudioRawFrame) for f in h.down)
        assert emu.connections[0].session["output_modalities"] == ["text"]
        created = emu.client_events_of("conversation.item.create")
        assert created[-1].data is not None
        assert created[-1].data["item"]["content"] == [{"type": "input_text", "text": "Say something."}]
        assert len(emu.client_events_of("response.create")) == 1
    emu.assert_valid()


async def test_typed_text_is_appended_and_answered_once_after_the_active_response() -> None:
    context = LLMContext([{"role": "system", "content": "Chat."}])
    async with (
        RealtimeEmulator(response_delay_secs=0.3) as emu,
        running_service(emu, context=context) as (_, h),
    ):
        emu.add_reply("First answer.")
        emu.add_reply("Second answer.")
        context.add_message({"role": "user", "content": "One."})
        await h.push(LLMContextFrame(context))
        await emu.wait_for_server_event("response.created")
        # A second message while the first response runs: its response waits for the first to finish.
        context.add_message({"role": "user", "content": "Two."})
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
        creates = emu.client_events_of("response.create")
        assert len(creates) == 2
        assert not [e for e in emu.server_events_of("error")]  # never refused as "already active"
        assert spoken_text(h.down) == "First answer.Second answer."
    emu.assert_valid()


async def test_manual_turns_commit_on_our_vad_and_respond_once() -> None:
    settings = RealtimeSettings(turn_detection=None)
    context = LLMContext([{"role": "system", "content": "Hi."}])
    async with RealtimeEmulator() as emu, running_service(emu, context=context, settings=settings) as (_, h):
        emu.add_transcript("turn the lights on")
        emu.add_reply("Done.")
        assert emu.connections[0].session["audio"]["input"]["turn_detection"] is None
        pcm = speech_16k("utt04_lights.wav", tail_ms=200)
        await h.push(*audio_frames(pcm[:16000]))
        await h.push(VADUserStartedSpeakingFrame(start_secs=0.2))
        await h.push(*audio_frames(pcm[16000:]))
        await h.push(VADUserStoppedSpeakingFrame(stop_secs=0.3))
        final = await h.up_recorder.wait_for(TranscriptionFrame)
        assert final.text == "turn the lights on"
        # The user aggregator writes the turn and pushes the context, then says the user stopped.
        context.add_message({"role": "user", "content": final.text})
        await h.push(LLMContextFrame(context), UserStoppedSpeakingFrame())
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        types = [e.type for e in emu.client_events]
        assert types.count("input_audio_buffer.clear") == 1
        assert types.count("input_audio_buffer.commit") == 1
        assert types.count("response.create") == 1
        assert types.index("input_audio_buffer.commit") < types.index("response.create")
        # The user's message came from the audio: it is not sent again as text.
        assert not emu.client_events_of("conversation.item.create")
        assert spoken_text(h.down) == "Done."
    emu.assert_valid()


async def test_settings_change_during_the_session() -> None:
    context = LLMContext([{"role": "system", "content": "Old prompt."}])
    async with RealtimeEmulator() as emu, running_service(emu, context=context) as (service, h):
        await h.push(LLMUpdateSettingsFrame(settings={"voice": "cedar", "instructions": "New prompt."}))
        await emu.wait_for_server_event("session.updated", count=2)
        await emu.wait_until(lambda: emu.connections[0].session["instructions"] == "New prompt.", "update")
        assert emu.connections[0].session["audio"]["output"]["voice"] == "cedar"
        assert context.messages[0] == {"role": "system", "content": "New prompt."}  # kept in step
        # A bad setting is answered, not ignored; nothing changes.
        await h.push(LLMUpdateSettingsFrame(settings={"vioce": "x"}))
        error = await h.up_recorder.wait_for(ErrorFrame)
        assert "vioce" in error.error
        # A new model needs a new connection; the conversation comes along.
        await h.push(LLMUpdateSettingsFrame(settings={"model": "gpt-realtime-mini"}))
        second = await emu.wait_for_connection(2)
        await emu.wait_until(lambda: second.session["instructions"] == "New prompt.", "second session")
        assert second.model == "gpt-realtime-mini"
        assert service.realtime_settings.model == "gpt-realtime-mini"
    emu.assert_valid()


async def test_camera_images_at_most_once_a_second() -> None:
    from voxloop.testing import FakeClock

    clock = FakeClock()
    jpeg = b"\xff\xd8\xff\xe0" + bytes(64) + b"\xff\xd9"
    async with (
        RealtimeEmulator() as emu,
        running_service(emu, context=LLMContext(), clock=clock, video_frame_detail="low") as (_, h),
    ):
        for _ in range(3):
            await h.push(InputImageRawFrame(jpeg, (8, 8), "JPEG"))
        await emu.wait_for_client_event("conversation.item.create")
        await clock.advance(1.0)
        await h.push(InputImageRawFrame(jpeg, (8, 8), "JPEG"))
        second = await emu.wait_for_client_event("conversation.item.create", count=2)
        assert second.data is not None
        part = second.data["item"]["content"][0]
        assert part["type"] == "input_image" and part["detail"] == "low"
        assert part["image_url"] == "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        assert len(emu.client_events_of("conversation.item.create")) == 2
    emu.assert_valid()


@pytest.mark.parametrize("pixel_format", ["RGB", "RGBA"])
async def test_raw_camera_frames_are_sent_as_jpeg_at_most_once_a_second(pixel_format: str) -> None:
    """A camera at 30 fps for 2.5 s: at most three image items, each a valid JPEG of the frame it was
    encoded from, with the configured detail level."""
    av = pytest.importorskip("av")
    np = pytest.importorskip("numpy")
    from voxloop.testing import FakeClock

    clock = FakeClock()
    width, height, channels = 320, 240, len(pixel_format)
    shades: list[int] = []

    def frame(n: int) -> InputImageRawFrame:
        shade = (n * 3) % 256  # each frame a different grey, so the test can tell which one was sent
        shades.append(shade)
        pixels = np.full((height, width, channels), shade, dtype=np.uint8)
        pixels[:, : width // 2, 0] = 255  # and a red half
        return InputImageRawFrame(pixels.tobytes(), (width, height), pixel_format)

    async with (
        RealtimeEmulator() as emu,
        running_service(emu, context=LLMContext(), clock=clock, video_frame_detail="high") as (_, h),
    ):
        for n in range(75):  # 2.5 s at 30 fps, each frame through the service before the next is due
            await h.push(frame(n))
            await h.down_recorder.wait_for(InputImageRawFrame, count=n + 1)
            await clock.advance(1 / 30)
        # A later event as a barrier: once it arrived, every image item sent before it had too.
        await h.push(LLMUpdateSettingsFrame(settings={"instructions": "Look at the camera."}))
        await emu.wait_for_client_event("session.update", count=2)
    emu.assert_valid()

    items = [e.data["item"] for e in emu.client_events_of("conversation.item.create") if e.data]
    assert len(items) == 3, len(items)  # at 0 s, 1 s and 2 s: at most one a second
    for k, item in enumerate(items):
        assert item["role"] == "user" and len(item["content"]) == 1
        part = item["content"][0]
        assert part["type"] == "input_image" and part["detail"] == "high"
        prefix = "data:image/jpeg;base64,"
        assert part["image_url"].startswith(prefix)
        jpeg = base64.b64decode(part["image_url"][len(prefix) :])
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"  # SOI ... EOI
        (decoded,) = av.CodecContext.create("mjpeg", "r").decode(av.Packet(jpeg))
        assert (decoded.width, decoded.height) == (width, height)
        rgb = decoded.to_ndarray(format="rgb24").astype(int)
        right = rgb[:, width // 2 + 8 :]  # the grey half, away from the edge's ringing
        # The frame of second k (the clock's sum of 1/30 s steps may land just before it: or the next).
        assert min(abs(right.mean() - shades[30 * k + i]) for i in (0, 1)) <= 4, (k, right.mean())
        assert rgb[:, : width // 2 - 8, 0].mean() >= 250  # the red half
    # The server's conversation has the three images, in order.
    images = [i for i in emu.connections[0].items if i["type"] == "message" and i["role"] == "user"]
    assert [i["content"][0]["image_url"] for i in images] == [i["content"][0]["image_url"] for i in items]
