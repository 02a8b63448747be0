"""The pure turn state machine: edge cases that are awkward to reach through frames."""

from __future__ import annotations

from voxloop.turns import (
    BotState,
    PauseBot,
    ResumeBot,
    SpeechRejected,
    TurnController,
    TurnEnded,
    TurnStarted,
    TurnVerdict,
    UserIdle,
    UserTurnParams,
)

S = 1_000_000_000


def kinds(actions: list[object]) -> list[type]:
    return [type(a) for a in actions]


def test_idle_fires_once_after_the_bot_finished() -> None:
    turns = TurnController(UserTurnParams(user_idle_timeout_secs=3.0))
    turns.on_bot_started(0)
    assert turns.on_bot_stopped(1 * S) == []
    turns.on_response_done(1 * S)
    assert turns.next_deadline(1 * S) == 4 * S
    assert kinds(turns.on_timer(4 * S)) == [UserIdle]
    assert turns.on_timer(10 * S) == [] and turns.next_deadline(10 * S) is None


def test_user_speech_cancels_the_idle_timer() -> None:
    turns = TurnController(UserTurnParams(user_idle_timeout_secs=3.0))
    turns.on_response_done(0)
    assert kinds(turns.on_vad_started(1 * S, 0.2)) == [TurnStarted]
    assert UserIdle not in kinds(turns.on_timer(5 * S))


def test_words_after_a_forced_end_start_a_new_turn() -> None:
    turns = TurnController(UserTurnParams(turn_timeout_secs=5.0))
    turns.on_vad_started(0, 0.2)
    ended = turns.on_timer(5 * S)
    assert kinds(ended) == [TurnEnded] and ended[0].forced and not turns.turn_open  # type: ignore[attr-defined]
    actions = turns.on_transcription(6 * S, "are you there")
    assert kinds(actions) == [TurnStarted] and turns.text == "are you there"


def test_undecided_speech_is_dropped_when_its_words_never_come() -> None:
    params = UserTurnParams(
        interruption_min_speech_secs=0.2, interruption_min_words=2, transcription_timeout_secs=2
    )
    turns = TurnController(params)
    turns.on_bot_started(0)
    assert kinds(turns.on_vad_started(1 * S, 0.2)) == [PauseBot]
    assert turns.on_vad_stopped(2 * S, 0.3) == []  # long enough; waiting for words
    assert turns.has_undecided_speech and turns.bot_paused
    assert kinds(turns.on_timer(4 * S)) == [SpeechRejected, ResumeBot]
    assert not turns.turn_open and not turns.has_undecided_speech


def test_bot_stopping_confirms_pending_speech() -> None:
    turns = TurnController(UserTurnParams(interruption_min_speech_secs=2.0))
    turns.on_bot_started(0)
    assert kinds(turns.on_vad_started(1 * S, 0.2)) == [PauseBot]
    assert turns.bot_state is BotState.SPEAKING
    actions = turns.on_bot_stopped(int(1.5 * S))
    assert kinds(actions) == [TurnStarted] and not turns.bot_paused  # the interruption clears the pause


def test_speech_ticks_confirm_a_barge_in_without_waiting_for_the_vad_stop_delay() -> None:
    turns = TurnController(UserTurnParams(interruption_min_speech_secs=0.4))
    turns.on_bot_started(0)
    onset = 1 * S
    assert kinds(turns.on_vad_started(onset + int(0.224 * S), 0.224)) == [PauseBot]  # 0.224 s of speech
    assert turns.on_user_speaking(onset + int(0.3 * S)) == []
    # A tick proves speech up to now: 0.4 s after the onset the barge-in is decided, not 0.32 s later.
    assert kinds(turns.on_user_speaking(onset + int(0.4 * S))) == [TurnStarted]


def test_without_ticks_speech_only_counts_up_to_the_vad_stop_delay_ago() -> None:
    turns = TurnController(UserTurnParams(interruption_min_speech_secs=0.4, pause_on_speech=False))
    turns.on_bot_started(0)
    assert turns.on_vad_started(1 * S, 0.2) == []  # onset at 0.8 s
    assert turns.on_timer(int(1.4 * S)) == []  # 0.6 s after the onset, but the VAD could still say "stopped"
    assert kinds(turns.on_timer(int(1.52 * S))) == [TurnStarted]  # 1.52 - 0.3 = 1.22 >= 0.8 + 0.4


# -- pause on speech: the bot falls silent at the VAD start, resumes on a false alarm --------------------


def speaking_bot(**params: object) -> TurnController:
    turns = TurnController(UserTurnParams(**params))  # type: ignore[arg-type]
    turns.on_response_started(0)
    turns.on_bot_started(0)
    return turns


def test_undecided_speech_over_the_bot_pauses_it_and_a_short_noise_resumes_it() -> None:
    turns = speaking_bot(interruption_min_speech_secs=0.4)
    assert kinds(turns.on_vad_started(1 * S, 0.2)) == [PauseBot] and turns.bot_paused
    assert turns.on_user_speaking(int(1.1 * S)) == []  # still undecided: no second pause
    # 0.2 s of speech (the VAD stops 0.3 s after it ended): noise. Rejected, and the bot goes on.
    actions = turns.on_vad_stopped(int(1.3 * S), 0.3)
    assert kinds(actions) == [SpeechRejected, ResumeBot] and not turns.bot_paused
    assert not turns.turn_open and turns.bot_state is BotState.SPEAKING
    # Its late words change nothing.
    assert turns.on_transcription(int(1.5 * S), "uh") == []
    assert turns.on_transcription_finished(int(1.5 * S)) == []


def test_too_few_words_resume_the_bot_once_the_stt_has_spoken() -> None:
    turns = speaking_bot(interruption_min_speech_secs=0.3, interruption_min_words=2)
    assert kinds(turns.on_vad_started(1 * S, 0.2)) == [PauseBot]
    assert turns.on_vad_stopped(2 * S, 0.3) == []  # long enough, the words decide: still paused
    assert turns.bot_paused
    assert turns.on_transcription(int(2.3 * S), "yeah") == []
    assert kinds(turns.on_transcription_finished(int(2.3 * S))) == [SpeechRejected, ResumeBot]
    assert not turns.bot_paused and not turns.turn_open


def test_confirmed_speech_interrupts_and_the_interruption_clears_the_pause() -> None:
    turns = speaking_bot(interruption_min_speech_secs=0.4)
    assert kinds(turns.on_vad_started(1 * S, 0.2)) == [PauseBot]
    actions = turns.on_user_speaking(int(1.2 * S))  # 0.4 s since the onset
    assert kinds(actions) == [TurnStarted] and actions[0].interrupt  # type: ignore[attr-defined]
    assert not turns.bot_paused  # no ResumeBot: the interruption drops the held audio instead
    # Further speech belongs to the open turn: no pause.
    turns.on_vad_stopped(int(1.8 * S), 0.3)
    assert turns.on_vad_started(2 * S, 0.2) == []


def test_a_second_burst_while_paused_keeps_one_pause_until_both_are_decided() -> None:
    turns = speaking_bot(interruption_min_speech_secs=0.3, interruption_min_words=3)
    assert kinds(turns.on_vad_started(1 * S, 0.2)) == [PauseBot]
    turns.on_vad_stopped(int(1.8 * S), 0.3)
    assert turns.on_vad_started(2 * S, 0.2) == []  # already paused
    assert turns.on_transcription(int(2.1 * S), "yeah") == []
    assert turns.on_transcription_finished(int(2.1 * S)) == [SpeechRejected("yeah")]  # the second holds on
    assert turns.bot_paused
    assert kinds(turns.on_vad_stopped(int(2.3 * S), 0.3)) == [SpeechRejected, ResumeBot]  # 0.2 s: noise


def test_the_bot_stopping_on_its_own_makes_the_pause_moot() -> None:
    turns = speaking_bot(interruption_min_speech_secs=0.4, interruption_min_words=2)
    assert kinds(turns.on_vad_started(1 * S, 0.2)) == [PauseBot]
    turns.on_vad_stopped(2 * S, 0.3)
    # The bot stops (its reply had ended before the pause): the held speech is now a normal turn.
    actions = turns.on_bot_stopped(int(2.1 * S))
    assert kinds(actions) == [TurnStarted] and not turns.bot_paused


def test_turning_the_pause_off_at_run_time_resumes() -> None:
    turns = speaking_bot(interruption_min_speech_secs=0.4, interruption_min_words=2)
    assert kinds(turns.on_vad_started(1 * S, 0.2)) == [PauseBot]
    turns.params.pause_on_speech = False
    assert kinds(turns.on_timer(int(1.1 * S))) == [ResumeBot]


def test_no_pause_when_listening_thinking_or_turned_off() -> None:
    listening = TurnController(UserTurnParams())
    assert kinds(listening.on_vad_started(1 * S, 0.2)) == [TurnStarted]
    thinking = TurnController(UserTurnParams(thinking_min_speech_secs=0.5))
    thinking.on_response_started(0)
    assert thinking.on_vad_started(1 * S, 0.2) == []  # undecided, but nothing to pause
    off = speaking_bot(pause_on_speech=False)
    assert off.on_vad_started(1 * S, 0.2) == [] and not off.bot_paused
    ignoring = speaking_bot(allow_interruptions=False)
    assert ignoring.on_vad_started(1 * S, 0.2) == [] and not ignoring.bot_paused
    assert ignoring.on_vad_stopped(int(2 * S), 0.3) == []


def test_the_end_forgets_the_pause() -> None:
    turns = speaking_bot()
    turns.on_vad_started(1 * S, 0.2)
    assert turns.on_end() is None and not turns.bot_paused


# -- with an end-of-turn detector --------------------------------------------------------------------


def detector_turn(verdict: bool | None) -> tuple[TurnController, list[object]]:
    """A turn: speech 0-1 s, VAD stop at 1.2 s, words in at 1.5 s, then ``verdict`` (None: none yet)."""
    turns = TurnController(UserTurnParams(max_silence_secs=2.0), uses_detector=True)
    turns.on_vad_started(0, 0.2)
    turns.on_vad_stopped(int(1.2 * S), 0.2)
    turns.on_transcription(int(1.5 * S), "I'd like a table for")
    actions = turns.on_transcription_finished(int(1.5 * S))
    if verdict is not None:
        actions = turns.on_turn_verdict(int(1.5 * S), verdict)
    return turns, actions


def test_done_ends_the_turn_as_soon_as_the_words_are_in() -> None:
    _, actions = detector_turn(True)
    assert kinds(actions) == [TurnEnded]


def test_not_done_waits_for_the_silence_limit_counted_from_the_end_of_speech() -> None:
    turns, actions = detector_turn(False)
    assert actions == [] and turns.next_deadline(int(1.5 * S)) == 3 * S  # speech ended at 1.0 s
    assert turns.on_timer(int(2.9 * S)) == []
    assert kinds(turns.on_timer(3 * S)) == [TurnEnded]


def test_without_a_verdict_the_silence_limit_applies_not_stop_secs() -> None:
    turns, actions = detector_turn(None)
    assert actions == [] and turns.on_timer(int(1.8 * S)) == []  # stop_secs (0.7 s) would have ended it
    assert kinds(turns.on_timer(3 * S)) == [TurnEnded]


def test_a_verdict_given_while_the_user_speaks_again_is_ignored() -> None:
    turns, _ = detector_turn(False)
    turns.on_vad_started(int(2.0 * S), 0.2)
    assert turns.on_turn_verdict(int(2.1 * S), True) == []
    assert turns.verdict is None and turns.turn_open


def test_done_still_waits_for_the_words_of_the_last_segment() -> None:
    turns = TurnController(uses_detector=True)
    turns.on_vad_started(0, 0.2)
    turns.on_vad_stopped(1 * S, 0.2)
    assert turns.on_turn_verdict(int(1.05 * S), True) == []  # the STT is not done yet
    turns.on_transcription(int(1.4 * S), "What time is it?")
    ended = turns.on_transcription_finished(int(1.4 * S))
    assert kinds(ended) == [TurnEnded] and ended[0].text == "What time is it?"  # type: ignore[attr-defined]


def test_done_holds_while_the_vad_hears_speech_again_after_a_short_pause() -> None:
    turns = TurnController(UserTurnParams(min_silence_secs=0.35), uses_detector=True)  # with the hold
    turns.on_vad_started(0, 0.2)
    turns.on_vad_stopped(int(1.2 * S), 0.2)  # speech ended at 1.0 s
    turns.on_transcription(int(1.25 * S), "I'd like.")
    assert turns.on_transcription_finished(int(1.25 * S)) == []
    assert turns.on_turn_verdict(int(1.3 * S), True) == []  # a comma's pause, and "um" follows
    assert turns.next_deadline(int(1.3 * S)) == int(1.35 * S)
    # The longest comma pause measured (piper, "Tell me, um"): 0.3 s. The VAD's first frame of the "um"
    # holds the turn; its start decision comes 0.2 s later.
    assert turns.on_speech_resumed(int(1.33 * S)) == []
    assert turns.on_timer(int(1.35 * S)) == [] and turns.next_deadline(int(1.35 * S)) == int(1.63 * S)
    turns.on_vad_started(int(1.53 * S), 0.2)
    assert turns.on_timer(int(1.63 * S)) == [] and turns.turn_open


def test_a_sound_that_was_not_speech_delays_a_done_turn_by_the_hold_only() -> None:
    p = UserTurnParams(min_silence_secs=0.35)
    turns = TurnController(p, uses_detector=True)
    turns.on_vad_started(0, 0.2)
    turns.on_vad_stopped(int(1.2 * S), 0.2)
    turns.on_transcription(int(1.25 * S), "What time is it?")
    turns.on_transcription_finished(int(1.25 * S))
    turns.on_turn_verdict(int(1.3 * S), True)
    turns.on_speech_resumed(int(1.32 * S))  # a click: the VAD never says "started"
    held_until = int(1.32 * S) + int(p.resume_hold_secs * S)
    assert turns.on_timer(held_until - 1) == []
    assert kinds(turns.on_timer(held_until)) == [TurnEnded]


def test_maybe_waits_longer_than_done_and_less_than_not_done() -> None:
    turns, actions = detector_turn(None)
    assert turns.on_turn_verdict(int(1.5 * S), TurnVerdict.MAYBE) == []
    # Speech ended at 1.0 s: "maybe" ends the turn after maybe_silence_secs (1.6 s), not the 2 s limit.
    assert turns.next_deadline(int(1.5 * S)) == int(2.6 * S)
    assert turns.on_timer(int(2.55 * S)) == []
    assert kinds(turns.on_timer(int(2.6 * S))) == [TurnEnded]


def test_likely_waits_longer_than_done_and_less_than_maybe() -> None:
    p = UserTurnParams()
    assert p.min_silence_secs < p.likely_silence_secs < p.maybe_silence_secs
    turns, _ = detector_turn(None)
    assert turns.on_turn_verdict(int(1.5 * S), TurnVerdict.LIKELY) == []
    # Speech ended at 1.0 s: "likely" ends the turn after likely_silence_secs, not maybe_silence_secs.
    deadline = int((1.0 + p.likely_silence_secs) * S)
    assert turns.next_deadline(int(1.5 * S)) == deadline
    assert turns.on_timer(deadline - int(0.05 * S)) == []
    assert kinds(turns.on_timer(deadline)) == [TurnEnded]


def test_likely_keeps_the_turn_open_when_a_finished_sentence_goes_on() -> None:
    turns, _ = detector_turn(None)
    turns.on_turn_verdict(int(1.5 * S), TurnVerdict.LIKELY)
    # "Could you play some music? ... by the Beatles": a 0.8 s pause, heard 0.2 s into the next words.
    turns.on_vad_started(int(2.0 * S), 0.2)
    assert turns.on_timer(int(2.2 * S)) == [] and turns.turn_open and turns.verdict is None


def test_done_waits_min_silence_secs_by_default() -> None:
    min_silence = UserTurnParams().min_silence_secs
    turns = TurnController(uses_detector=True)
    turns.on_vad_started(0, 0.2)
    turns.on_vad_stopped(int(1.2 * S), 0.2)  # speech ended at 1.0 s
    turns.on_transcription(int(1.2 * S), "What time is it?")
    assert turns.on_transcription_finished(int(1.2 * S)) == []  # an STT faster than min_silence_secs
    assert turns.on_turn_verdict(int(1.2 * S), True) == []
    assert turns.next_deadline(int(1.2 * S)) == int((1.0 + min_silence) * S)
    assert kinds(turns.on_timer(int((1.0 + min_silence) * S))) == [TurnEnded]


def test_maybe_keeps_the_turn_open_when_the_user_goes_on_within_it() -> None:
    turns, _ = detector_turn(None)
    turns.on_turn_verdict(int(1.5 * S), TurnVerdict.MAYBE)
    turns.on_vad_started(int(2.4 * S), 0.2)  # a 1.2 s thinking pause, heard 0.2 s into the next word
    assert turns.on_timer(int(2.6 * S)) == [] and turns.turn_open and turns.verdict is None


def test_maybe_is_never_longer_than_the_silence_limit() -> None:
    turns = TurnController(UserTurnParams(maybe_silence_secs=5.0, max_silence_secs=2.0), uses_detector=True)
    turns.on_vad_started(0, 0.2)
    turns.on_vad_stopped(int(1.2 * S), 0.2)
    turns.on_transcription(int(1.5 * S), "Please remind me")
    turns.on_transcription_finished(int(1.5 * S))
    turns.on_turn_verdict(int(1.5 * S), TurnVerdict.MAYBE)
    assert turns.next_deadline(int(1.5 * S)) == 3 * S


def test_a_detector_may_answer_with_a_bool() -> None:
    assert TurnVerdict.of(True) is TurnVerdict.DONE and TurnVerdict.of(False) is TurnVerdict.NOT_DONE
    assert TurnVerdict.of(TurnVerdict.MAYBE) is TurnVerdict.MAYBE
    assert bool(TurnVerdict.DONE) and not TurnVerdict.MAYBE and not TurnVerdict.NOT_DONE
