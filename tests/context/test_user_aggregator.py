"""The user aggregator: turn-taking against a fake clock, and context edits from upstream."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import numpy as np
import pytest

from helpers.sync import through, through_up
from voxloop.context import LLMContext, LLMUserAggregator
from voxloop.frames import (
    AssistantTurnStoppedFrame,
    BotOutputPauseFrame,
    BotOutputResumeFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InputTextRawFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMMessagesAppendFrame,
    LLMMessagesUpdateFrame,
    LLMRunFrame,
    LLMSetToolChoiceFrame,
    LLMSetToolsFrame,
    TranscriptionFinishedFrame,
    TranscriptionFrame,
    UserSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADSpeechEndingFrame,
    VADSpeechResumedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from voxloop.services.local.whisper import WhisperResult
from voxloop.testing import FakeClock, PipelineHarness
from voxloop.turns import BotState, SpokenWord, TurnTranscript, TurnVerdict, UserTurnParams


def vad_start() -> VADUserStartedSpeakingFrame:
    return VADUserStartedSpeakingFrame(start_secs=0.2, timestamp=0.0)


def vad_stop() -> VADUserStoppedSpeakingFrame:
    return VADUserStoppedSpeakingFrame(stop_secs=0.3, timestamp=0.0)


def said(text: str) -> list[Frame]:
    return [TranscriptionFrame(text, user_id="u", finalized=True), TranscriptionFinishedFrame(text)]


class Session:
    """A user aggregator in a harness on a fake clock, with short helpers."""

    def __init__(self, params: UserTurnParams | None = None, **kwargs: Any) -> None:
        self.clock = FakeClock()
        self.context = LLMContext([{"role": "system", "content": "be brief"}])
        self.agg = LLMUserAggregator(self.context, params or UserTurnParams(), **kwargs)
        self.harness = PipelineHarness(self.agg, clock=self.clock)
        self.events: list[tuple[str, Any]] = []
        for event in ("on_user_turn_started", "on_user_turn_stopped", "on_user_speech_rejected"):
            self.agg.add_event_handler(event, lambda _agg, *args, e=event: self.events.append((e, args)))

    async def __aenter__(self) -> Session:
        await self.harness.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.harness.__aexit__(*exc)

    async def send(self, *frames: Frame) -> None:
        await through(self.harness, *frames)

    async def send_up(self, *frames: Frame) -> None:
        await through_up(self.harness, *frames)

    async def wait(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    def down(self, frame_type: type[Frame]) -> list[Frame]:
        return [f for f in self.harness.down if isinstance(f, frame_type)]

    def up(self, frame_type: type[Frame]) -> list[Frame]:
        return [f for f in self.harness.up if isinstance(f, frame_type)]

    def user_messages(self) -> list[str]:
        return [m["content"] for m in self.context.messages if m["role"] == "user"]

    async def bot_speaks(self) -> None:
        await self.send_up(BotStartedSpeakingFrame())


async def test_turn_ends_after_silence_and_the_stt_finished(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(vad_start())
        assert len(s.down(UserStartedSpeakingFrame)) == 1 and len(s.up(UserStartedSpeakingFrame)) == 1
        await s.wait(1.0)
        await s.send(vad_stop())
        await s.send(TranscriptionFrame("what time is it", user_id="u", finalized=True))
        await s.wait(1.0)  # silence is long enough, but the STT has not said it finished
        assert not s.down(LLMContextFrame)
        await s.send(TranscriptionFinishedFrame("what time is it"))
        assert len(s.down(LLMContextFrame)) == 1
        assert s.down(LLMContextFrame)[0].context is s.context
        assert s.user_messages() == ["what time is it"]
        assert len(s.down(UserStoppedSpeakingFrame)) == 1 and len(s.up(UserStoppedSpeakingFrame)) == 1
        assert s.agg.turn_controller.bot_state is BotState.THINKING
    assert ("on_user_turn_stopped", ("what time is it",)) in s.events
    # Transcriptions are consumed, not passed on.
    assert not s.down(TranscriptionFrame) and not s.down(TranscriptionFinishedFrame)


async def test_silence_is_counted_from_the_end_of_speech(no_leaked_tasks: None) -> None:
    async with Session(UserTurnParams(stop_secs=0.7)) as s:
        await s.send(vad_start())
        await s.wait(0.5)
        await s.send(vad_stop())  # speech ended 0.3 s ago
        await s.send(*said("hello"))
        await s.wait(0.39)
        assert not s.down(LLMContextFrame)
        await s.wait(0.02)
        assert len(s.down(LLMContextFrame)) == 1


async def test_speaking_again_keeps_one_turn(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(vad_start())
        await s.wait(0.5)
        await s.send(vad_stop(), *said("book a table"))
        await s.wait(0.3)
        await s.send(vad_start())  # a pause shorter than the turn's stop_secs
        await s.wait(0.5)
        await s.send(vad_stop(), *said("for two"))
        await s.wait(1.0)
        assert s.user_messages() == ["book a table for two"]
        assert len(s.down(LLMContextFrame)) == 1 and len(s.down(UserStartedSpeakingFrame)) == 1


async def test_fallback_when_the_stt_never_says_it_finished(no_leaked_tasks: None) -> None:
    async with Session(UserTurnParams(transcription_timeout_secs=2.0)) as s:
        await s.send(vad_start())
        await s.wait(0.5)
        await s.send(vad_stop(), TranscriptionFrame("hi there", user_id="u", finalized=True))
        await s.wait(1.9)
        assert not s.down(LLMContextFrame)
        await s.wait(0.2)
        assert s.user_messages() == ["hi there"]


async def test_barge_in_while_the_bot_speaks_needs_the_minimum_speech(no_leaked_tasks: None) -> None:
    async with Session(UserTurnParams(interruption_min_speech_secs=0.5)) as s:
        await s.bot_speaks()
        await s.send(vad_start())  # 0.2 s of speech so far
        await s.send(UserSpeakingFrame())
        # While the VAD says "speaking", speech is only sure up to its stop delay (0.3 s) ago: 0.5 s
        # of sure speech is reached 0.6 s after the VAD start.
        await s.wait(0.55)
        assert not s.down(InterruptionFrame) and not s.down(UserStartedSpeakingFrame)
        await s.wait(0.1)
        assert len(s.down(InterruptionFrame)) == 1 and len(s.up(InterruptionFrame)) == 1
        assert len(s.down(UserStartedSpeakingFrame)) == 1
        await s.send_up(BotStoppedSpeakingFrame())
        await s.wait(0.5)
        await s.send(vad_stop(), *said("no wait stop"))
        await s.wait(1.0)
        assert s.user_messages() == ["no wait stop"]


async def test_a_speech_tick_confirms_the_barge_in_as_soon_as_the_minimum_is_spoken(
    no_leaked_tasks: None,
) -> None:
    async with Session(UserTurnParams(interruption_min_speech_secs=0.5)) as s:
        await s.bot_speaks()
        await s.send(vad_start())  # onset 0.2 s ago
        await s.wait(0.25)
        await s.send(UserSpeakingFrame())  # speech still going on 0.45 s after the onset: not enough
        assert not s.down(InterruptionFrame)
        await s.wait(0.05)
        await s.send(UserSpeakingFrame())  # 0.5 s: the user is talking over the bot
        assert len(s.down(InterruptionFrame)) == 1 and len(s.down(UserStartedSpeakingFrame)) == 1


async def test_short_noise_while_the_bot_speaks_leaves_no_trace(no_leaked_tasks: None) -> None:
    async with Session(UserTurnParams(interruption_min_speech_secs=0.5)) as s:
        await s.bot_speaks()
        await s.send(vad_start())
        await s.wait(0.3)
        await s.send(vad_stop())  # 0.2 s of "speech": a cough
        await s.wait(0.2)
        # The user starts for real before the STT delivered the cough's words.
        await s.send_up(BotStoppedSpeakingFrame())
        await s.send(vad_start())
        await s.send(*said("uh"))  # the cough's transcription arrives late
        await s.wait(0.8)
        await s.send(vad_stop(), *said("where is my order"))
        await s.wait(1.0)
        assert s.user_messages() == ["where is my order"]
        assert len(s.down(LLMContextFrame)) == 1
        # The cough never interrupted the bot (the only interruption is the real turn's).
        assert len(s.down(UserStartedSpeakingFrame)) == 1
        starts = s.harness.down.index(s.down(UserStartedSpeakingFrame)[0])
        assert all(s.harness.down.index(f) > starts for f in s.down(InterruptionFrame))
    assert ("on_user_speech_rejected", ("",)) in s.events


async def test_a_noise_over_the_bot_pauses_it_then_resumes_it_and_leaves_no_trace(
    no_leaked_tasks: None,
) -> None:
    async with Session(UserTurnParams(interruption_min_speech_secs=0.4)) as s:
        await s.bot_speaks()
        await s.send(vad_start())
        # The bot is held at once, downstream only (towards the output), before anything is decided.
        assert len(s.down(BotOutputPauseFrame)) == 1 and not s.up(BotOutputPauseFrame)
        assert not s.down(BotOutputResumeFrame) and s.agg.turn_controller.bot_paused
        await s.send(UserSpeakingFrame())
        await s.wait(0.1)
        await s.send(vad_stop())  # about 0.1 s of speech: a cough
        assert len(s.down(BotOutputResumeFrame)) == 1 and not s.agg.turn_controller.bot_paused
        pause, resume = s.down(BotOutputPauseFrame)[0], s.down(BotOutputResumeFrame)[0]
        assert s.harness.down.index(pause) < s.harness.down.index(resume)
        await s.send(*said("hm"))
        await s.wait(10)
        assert not s.down(InterruptionFrame) and not s.down(UserStartedSpeakingFrame)
        assert not s.down(LLMContextFrame) and not s.agg.user_turn_open
        assert s.context.messages == [{"role": "system", "content": "be brief"}]
        assert len(s.down(BotOutputPauseFrame)) == 1 and len(s.down(BotOutputResumeFrame)) == 1
    assert [e[0] for e in s.events] == ["on_user_speech_rejected"]


async def test_a_barge_in_after_the_pause_interrupts_without_resuming(no_leaked_tasks: None) -> None:
    async with Session(UserTurnParams(interruption_min_speech_secs=0.4)) as s:
        await s.bot_speaks()
        await s.send(vad_start())
        await s.wait(0.3)
        await s.send(UserSpeakingFrame())  # 0.5 s after the onset: a barge-in
        assert len(s.down(InterruptionFrame)) == 1 and len(s.down(UserStartedSpeakingFrame)) == 1
        pause, interruption = s.down(BotOutputPauseFrame)[0], s.down(InterruptionFrame)[0]
        assert s.harness.down.index(pause) < s.harness.down.index(interruption)
        await s.send_up(BotStoppedSpeakingFrame())
        await s.wait(0.3)
        await s.send(vad_stop(), *said("hold on"))
        await s.wait(1.0)
        assert s.user_messages() == ["hold on"]
        assert not s.down(BotOutputResumeFrame)  # the interruption cleared the pause


async def test_no_pause_when_turned_off_or_when_the_bot_is_not_speaking(no_leaked_tasks: None) -> None:
    async with Session(UserTurnParams(pause_on_speech=False)) as s:
        await s.bot_speaks()
        await s.send(vad_start())
        await s.wait(0.1)
        await s.send(vad_stop())
        assert not s.down(BotOutputPauseFrame) and not s.down(BotOutputResumeFrame)
    async with Session() as s:
        await s.send(LLMRunFrame())  # thinking
        await s.send(vad_start())
        assert not s.down(BotOutputPauseFrame) and len(s.down(InterruptionFrame)) == 1


async def test_noise_alone_while_the_bot_speaks_opens_nothing(no_leaked_tasks: None) -> None:
    async with Session(UserTurnParams(interruption_min_speech_secs=0.5)) as s:
        await s.bot_speaks()
        await s.send(vad_start())
        await s.wait(0.1)
        await s.send(vad_stop(), *said("hm"))
        await s.wait(10)
        assert not s.down(InterruptionFrame) and not s.down(UserStartedSpeakingFrame)
        assert not s.down(UserStoppedSpeakingFrame) and not s.down(LLMContextFrame)
        assert not s.agg.user_turn_open
        assert s.context.messages == [{"role": "system", "content": "be brief"}]
    # Rejected when the VAD stopped (before its words came); the late words are dropped quietly.
    assert [e for e in s.events if e[0] == "on_user_speech_rejected"] == [("on_user_speech_rejected", ("",))]


async def test_barge_in_with_a_minimum_of_words(no_leaked_tasks: None) -> None:
    params = UserTurnParams(interruption_min_speech_secs=0.3, interruption_min_words=2)
    async with Session(params) as s:
        await s.bot_speaks()
        await s.send(vad_start())
        await s.wait(0.6)
        await s.send(vad_stop())
        assert not s.down(InterruptionFrame)  # long enough, but no words yet
        await s.send(*said("yeah"))  # one word: backchannel, not an interruption
        assert not s.down(InterruptionFrame)
        await s.send(vad_start())
        await s.wait(0.6)
        await s.send(vad_stop())
        await s.send(*said("stop right there"))
        assert len(s.down(InterruptionFrame)) == 1
        await s.send_up(BotStoppedSpeakingFrame())
        await s.wait(1.0)
        assert s.user_messages() == ["stop right there"]


async def test_speech_while_thinking_interrupts_at_once_and_merges(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(vad_start())
        await s.wait(0.5)
        await s.send(vad_stop(), *said("tell me a joke"))
        await s.wait(1.0)
        assert s.agg.turn_controller.bot_state is BotState.THINKING
        interruptions = len(s.down(InterruptionFrame))
        await s.send(vad_start())
        assert len(s.down(InterruptionFrame)) == interruptions + 1
        await s.wait(0.5)
        await s.send(vad_stop(), *said("about cats"))
        await s.wait(1.0)
        assert s.user_messages() == ["tell me a joke", "about cats"]
        assert len(s.down(LLMContextFrame)) == 2


async def test_an_empty_turn_that_cut_off_a_silent_reply_asks_again(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(vad_start())
        await s.wait(0.5)
        await s.send(vad_stop(), *said("tell me a joke"))
        await s.wait(1.0)
        await s.send(vad_start())  # a cough while the LLM thinks: the reply is cancelled
        await s.wait(0.3)
        await s.send(vad_stop(), *said(""))
        await s.wait(1.0)
        assert s.user_messages() == ["tell me a joke"]
        assert len(s.down(LLMContextFrame)) == 2  # run again on the same context


async def test_bot_state_follows_speaking_and_the_assistant_turn(no_leaked_tasks: None) -> None:
    async with Session() as s:
        state = s.agg.turn_controller
        assert state.bot_state is BotState.LISTENING
        await s.send(LLMRunFrame())
        assert state.bot_state is BotState.THINKING
        await s.bot_speaks()
        assert state.bot_state is BotState.SPEAKING
        await s.send_up(BotStoppedSpeakingFrame())
        assert state.bot_state is BotState.THINKING  # the reply is not over yet
        # An error on the way (a failing function handler, a TTS sentence) does not end the reply: the
        # LLM still answers with the error result; only the assistant aggregator knows when it is over.
        await s.send_up(ErrorFrame(error="get_weather failed"))
        assert state.bot_state is BotState.THINKING and s.up(ErrorFrame)
        await s.send_up(AssistantTurnStoppedFrame(text="hi"))
        assert state.bot_state is BotState.LISTENING
        # Both pass on upstream.
        assert s.up(BotStoppedSpeakingFrame) and s.up(AssistantTurnStoppedFrame)


async def test_interruptions_off_ignores_the_user_while_the_bot_speaks(no_leaked_tasks: None) -> None:
    async with Session(UserTurnParams(allow_interruptions=False)) as s:
        await s.bot_speaks()
        await s.send(vad_start())
        await s.wait(2.0)
        await s.send(vad_stop(), *said("hello hello"))
        await s.wait(2.0)
        assert not s.down(InterruptionFrame) and not s.user_messages()


async def test_transcription_without_vad_starts_and_ends_a_turn(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(TranscriptionFrame("typed by a streaming stt", user_id="u", finalized=True))
        assert len(s.down(UserStartedSpeakingFrame)) == 1
        await s.wait(0.8)
        assert s.user_messages() == ["typed by a streaming stt"]


async def test_safety_net_closes_a_turn_that_never_ends(no_leaked_tasks: None) -> None:
    async with Session(UserTurnParams(turn_timeout_secs=5.0)) as s:
        await s.send(vad_start())
        await s.wait(1.0)
        await s.send(UserSpeakingFrame())  # then the audio stops: no VAD stop ever comes
        await s.wait(4.9)
        assert not s.down(UserStoppedSpeakingFrame)
        await s.wait(0.2)
        assert len(s.down(UserStoppedSpeakingFrame)) == 1
        assert not s.agg.user_turn_open


async def test_pending_words_are_kept_on_end_without_running_the_llm(no_leaked_tasks: None) -> None:
    s = Session()
    async with s:
        await s.send(vad_start())
        await s.wait(0.5)
        await s.send(vad_stop(), TranscriptionFrame("goodbye", user_id="u", finalized=True))
        await s.harness.push(EndFrame())  # leaving the block waits until the task has ended
    assert s.user_messages() == ["goodbye"]
    assert not s.down(LLMContextFrame)


async def test_send_text_path(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.send(LLMMessagesAppendFrame(messages=[{"role": "user", "content": "hi"}], run_llm=True))
        assert len(s.down(LLMContextFrame)) == 1 and s.user_messages() == ["hi"]
        await s.send(LLMMessagesAppendFrame(messages=[{"role": "user", "content": "quiet"}], run_llm=False))
        assert len(s.down(LLMContextFrame)) == 1 and s.user_messages() == ["hi", "quiet"]
        await s.send(LLMMessagesUpdateFrame(messages=[{"role": "system", "content": "new"}], run_llm=False))
        assert s.context.messages == [{"role": "system", "content": "new"}]
        await s.send(LLMRunFrame())
        assert len(s.down(LLMContextFrame)) == 2
        tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}
        await s.send(LLMSetToolsFrame(tools=[tool]), LLMSetToolChoiceFrame(tool_choice="required"))
        assert s.context.tools.names() == ["f"] and s.context.tool_choice == "required"
        # Appends are consumed; new tools travel on, once, so a speech-to-speech service sends them now.
        assert not s.down(LLMMessagesAppendFrame)
        assert [f.tools for f in s.down(LLMSetToolsFrame)] == [[tool]]


async def test_typed_text_interrupts_and_runs(no_leaked_tasks: None) -> None:
    async with Session() as s:
        await s.bot_speaks()
        await s.send(InputTextRawFrame("actually, cancel that"))
        assert len(s.down(InterruptionFrame)) == 1
        assert s.user_messages() == ["actually, cancel that"] and len(s.down(LLMContextFrame)) == 1


@pytest.mark.parametrize("threshold, summarized", [(2, True), (10, False)])
async def test_summarizer_runs_before_the_llm_past_the_threshold(
    threshold: int, summarized: bool, no_leaked_tasks: None
) -> None:
    calls: list[int] = []

    async def summarize(context: LLMContext) -> None:
        calls.append(len(context.messages))
        context.set_messages([{"role": "system", "content": "summary"}, *context.messages[-1:]])

    async with Session(context_summarizer=summarize, summarize_after_messages=threshold) as s:
        s.context.add_messages([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
        await s.send(LLMMessagesAppendFrame(messages=[{"role": "user", "content": "c"}], run_llm=True))
        assert len(s.down(LLMContextFrame)) == 1
    if summarized:
        assert calls == [4]
        assert s.context.messages == [
            {"role": "system", "content": "summary"},
            {"role": "user", "content": "c"},
        ]
    else:
        assert calls == [] and len(s.context.messages) == 4


class RecordingJudge:
    """A custom end-of-turn detector (the protocol users plug in): answers "maybe", keeps what it got."""

    def __init__(self) -> None:
        self.transcripts: list[str] = []

    async def turn_is_complete(
        self, audio: bytes, sample_rate: int, transcript: Awaitable[str]
    ) -> TurnVerdict:
        self.transcripts.append(await transcript)
        return TurnVerdict.MAYBE


async def test_a_detector_gets_the_stt_words_and_a_maybe_waits_longer(no_leaked_tasks: None) -> None:
    judge = RecordingJudge()
    words = (SpokenWord("Please", 0.6), SpokenWord("remind", 0.7), SpokenWord("me", 0.99, 0.001))
    params = UserTurnParams(min_silence_secs=0.5, maybe_silence_secs=1.6, max_silence_secs=2.0)
    async with Session(params, turn_detector=judge) as s:
        await s.send(vad_start())
        await s.wait(1.0)
        await s.send(vad_stop())  # the speech ended 0.3 s before (the VAD's stop delay)
        heard = WhisperResult(10, -0.2, 0.01, words)  # what the local Whisper attaches to its transcription
        await s.send(TranscriptionFrame("Please remind me", user_id="u", finalized=True, result=heard))
        await s.send(TranscriptionFinishedFrame("Please remind me"))
        await s.wait(0.0)
        assert judge.transcripts == ["Please remind me"]
        assert isinstance(judge.transcripts[0], TurnTranscript) and judge.transcripts[0].words == words
        assert s.agg.turn_controller.verdict is TurnVerdict.MAYBE
        await s.wait(1.2)  # 1.5 s since the speech ended: "done" would have ended it, "maybe" waits
        assert not s.down(LLMContextFrame)
        await s.wait(0.2)
        assert s.user_messages() == ["Please remind me"]


class ScriptedJudge:
    """A detector that answers each pause from a list, and keeps the audio it was given."""

    def __init__(self, *answers: TurnVerdict, hears_words: bool = True) -> None:
        self.answers = list(answers)
        self.hears_words = hears_words  # False: an audio-only model, which answers before the words are in
        self.audio: list[bytes] = []

    async def turn_is_complete(
        self, audio: bytes, sample_rate: int, transcript: Awaitable[str]
    ) -> TurnVerdict:
        self.audio.append(audio)
        if self.hears_words:
            await transcript
        return self.answers.pop(0)


def user_audio(value: int, secs: float) -> InputAudioRawFrame:
    samples = np.full(round(secs * 16000), value, dtype="<i2")
    return InputAudioRawFrame(audio=samples.tobytes(), sample_rate=16000, num_channels=1)


async def test_asked_at_the_vads_ending_the_answer_counts_at_its_stop(no_leaked_tasks: None) -> None:
    judge = ScriptedJudge(TurnVerdict.DONE, hears_words=False)
    params = UserTurnParams(min_silence_secs=0.35)
    async with Session(params, turn_detector=judge) as s:
        await s.send(vad_start(), user_audio(900, 1.0), user_audio(3, 0.128))
        await s.send(VADSpeechEndingFrame(quiet_secs=0.128, until_stop_secs=0.096))
        await s.wait(0.0)
        assert len(judge.audio) == 1  # judged, before the VAD's stop
        # It heard the audio as the stop would give it: the quiet lengthened by 0.096 s.
        tail = np.frombuffer(judge.audio[0], dtype="<i2")[-round(0.224 * 16000) :]
        assert set(tail.tolist()) == {3}
        assert s.agg.turn_controller.verdict is None  # the answer waits for the stop
        await s.wait(0.096)
        await s.send(VADUserStoppedSpeakingFrame(stop_secs=0.224))
        assert s.agg.turn_controller.verdict is TurnVerdict.DONE
        await s.send(*said("What time is it?"))  # the STT's draft, pushed at the stop
        await s.wait(0.0)
        assert len(judge.audio) == 1 and not s.down(LLMContextFrame)  # not asked again; 0.224 s of quiet
        await s.wait(0.13)  # 0.35 s after the speech ended
        assert s.user_messages() == ["What time is it?"]


async def test_speech_after_the_vads_ending_drops_that_answer(no_leaked_tasks: None) -> None:
    judge = ScriptedJudge(TurnVerdict.DONE, TurnVerdict.NOT_DONE)
    async with Session(UserTurnParams(max_silence_secs=2.0), turn_detector=judge) as s:
        await s.send(vad_start(), user_audio(900, 1.0))
        await s.send(VADSpeechEndingFrame(quiet_secs=0.128, until_stop_secs=0.096))
        await s.send(VADSpeechResumedFrame())  # "I'd like ... a table for"
        await s.wait(0.5)
        await s.send(vad_stop())
        await s.send(*said("I'd like a table for"))
        await s.wait(0.5)
        assert len(judge.audio) == 2  # asked again at the stop, about the whole segment
        assert s.agg.turn_controller.verdict is TurnVerdict.NOT_DONE
        assert not s.down(LLMContextFrame)  # the early "done" never counted
