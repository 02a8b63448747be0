"""The pure turn state machine: edge cases that are awkward to reach through frames."""

from __future__ import annotations

from voxloop.turns import BotState, TurnController, UserTurnParams
from voxloop.turns._controller import SpeechRejected, TurnEnded, TurnStarted, UserIdle

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
    turns.on_vad_started(1 * S, 0.2)
    assert turns.on_vad_stopped(2 * S, 0.3) == []  # long enough; waiting for words
    assert turns.has_undecided_speech
    assert kinds(turns.on_timer(4 * S)) == [SpeechRejected]
    assert not turns.turn_open and not turns.has_undecided_speech


def test_bot_stopping_confirms_pending_speech() -> None:
    turns = TurnController(UserTurnParams(interruption_min_speech_secs=2.0))
    turns.on_bot_started(0)
    assert turns.on_vad_started(1 * S, 0.2) == []
    assert turns.bot_state is BotState.SPEAKING
    actions = turns.on_bot_stopped(int(1.5 * S))
    assert kinds(actions) == [TurnStarted]


def test_speech_ticks_confirm_a_barge_in_without_waiting_for_the_vad_stop_delay() -> None:
    turns = TurnController(UserTurnParams(interruption_min_speech_secs=0.4))
    turns.on_bot_started(0)
    onset = 1 * S
    assert turns.on_vad_started(onset + int(0.224 * S), 0.224) == []  # 0.224 s of speech so far
    assert turns.on_user_speaking(onset + int(0.3 * S)) == []
    # A tick proves speech up to now: 0.4 s after the onset the barge-in is decided, not 0.32 s later.
    assert kinds(turns.on_user_speaking(onset + int(0.4 * S))) == [TurnStarted]


def test_without_ticks_speech_only_counts_up_to_the_vad_stop_delay_ago() -> None:
    turns = TurnController(UserTurnParams(interruption_min_speech_secs=0.4))
    turns.on_bot_started(0)
    turns.on_vad_started(1 * S, 0.2)  # onset at 0.8 s
    assert turns.on_timer(int(1.4 * S)) == []  # 0.6 s after the onset, but the VAD could still say "stopped"
    assert kinds(turns.on_timer(int(1.52 * S))) == [TurnStarted]  # 1.52 - 0.3 = 1.22 >= 0.8 + 0.4
