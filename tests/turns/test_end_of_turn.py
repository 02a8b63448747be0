"""End-of-turn detectors: the judge (Smart Turn and what Whisper heard), and the protocol a custom one meets.

The judge's signals are checked on what the real models (Whisper tiny.en, Smart Turn v3.2) make of real
espeak-ng and piper speech: fragments cut at a thinking pause, and finished questions.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from helpers.speech import silence, spoken, spoken_with_pause
from voxloop.services.local.whisper import load_whisper_model, transcribe_pcm
from voxloop.turns import (
    EndOfTurnDetector,
    SmartTurnDetector,
    SpokenWord,
    TurnTranscript,
    TurnVerdict,
    UserTurnParams,
)
from voxloop.turns.end_of_turn import heard_words, is_a_guess, judge, sure_of_the_end, words_go_on


@pytest.mark.parametrize(
    ("text", "goes_on"),
    [
        ("I'd like a table for", True),
        ("turn off the lights and...", True),
        ("Can you tell me,", True),
        ("Um", True),
        ("", True),
        ("What time is it?", False),
        ("Turn off the lights in the kitchen.", False),
    ],
)
def test_words_that_plainly_go_on(text: str, goes_on: bool) -> None:
    assert words_go_on(text) is goes_on


def done(text: str) -> asyncio.Future[str]:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    future.set_result(text)
    return future


async def test_smart_turn_says_done_only_when_the_sound_and_the_words_agree(speech_workers) -> None:
    detector = SmartTurnDetector()
    assert isinstance(detector, EndOfTurnDetector)
    finished = await spoken("four people tonight.") + silence(0.2)  # the model scores this 0.9+
    filler = await spoken("Tell me, um,") + silence(0.2)  # and this 0.01
    assert await detector.turn_is_complete(finished, 16000, done("Four people tonight."))
    assert detector.last_probability is not None and detector.last_probability > 0.8
    assert not await detector.turn_is_complete(filler, 16000, done("Tell me."))  # the sound says no
    assert not await detector.turn_is_complete(finished, 16000, done("Four people and"))  # the words say no
    with pytest.raises(ValueError, match="16 kHz"):
        await detector.turn_is_complete(finished, 8000, done(""))


# -- the judge's signals, on what the real models make of real speech ----------------------------------


def words_of(*pairs: tuple[str, float]) -> tuple[SpokenWord, ...]:
    return tuple(SpokenWord(text, p) for text, p in pairs)


@pytest.mark.parametrize(
    ("model_says_done", "text", "words", "verdict"),
    [
        (True, "What time is it?", words_of(("What", 0.9), ("time", 0.9), ("is", 0.9), ("it?", 0.9)), "done"),
        (False, "What time is it?", (), "maybe"),  # the sound and the words disagree
        # ... but Whisper was sure of the last word and of not ending before it: likely done.
        (False, "What time is it?", (SpokenWord("is", 0.99), SpokenWord("it?", 0.8, 0.02)), "likely"),
        (False, "What time is it?", (SpokenWord("is", 0.99), SpokenWord("it?", 0.79, 0.0)), "maybe"),
        (False, "What time is it?", (SpokenWord("is", 0.99), SpokenWord("it?", 0.99, 0.03)), "maybe"),
        (False, "Tell me a joke. Okay.", words_of(("joke.", 0.99), ("Okay.", 0.03)), "maybe"),  # a guess
        (False, "Please remind me", words_of(("remind", 0.99), ("me", 0.99)), "maybe"),  # left open
        (
            True,
            "a table for it.",
            words_of(("a", 0.9), ("table", 0.9), ("for", 0.9), ("it.", 0.4)),
            "not done",
        ),
        (True, "Tell me a joke. Okay.", words_of(("joke.", 0.99), ("Okay.", 0.03)), "done"),  # a guess after
        (True, "Please remind me", (), "maybe"),  # no full stop: Whisper left it open
        (True, "No.", words_of(("No.", 0.3)), "maybe"),  # nothing sure was heard
        (True, "turn off the lights and...", (), "not done"),
        (False, "", (), "not done"),
        # Words that do not match the text's end (another STT's) are not used.
        (True, "a table for it.", words_of(("for", 0.9), ("them.", 0.1)), "done"),
    ],
)
def test_the_rules_of_the_judge(
    model_says_done: bool, text: str, words: tuple[SpokenWord, ...], verdict: str
) -> None:
    assert judge(model_says_done, text, words).value == verdict


def first_part(pcm: bytes, pause_secs: float) -> bytes:
    """The speech before the inserted pause (the first silence that long)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    quiet = np.abs(samples.astype(np.int32)) <= 300
    run = 0
    for i, q in enumerate(quiet):
        run = run + 1 if q else 0
        if run >= int(pause_secs * 16000):
            return samples[: i - run + 1].tobytes()
    raise AssertionError("no pause found")


def trimmed(pcm: bytes) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)
    return samples[loud[0] : loud[-1] + 1].tobytes()


async def what_the_models_make_of(
    speech: bytes, detector: SmartTurnDetector
) -> tuple[TurnTranscript, TurnVerdict]:
    """As in the pipeline: 0.5 s before the speech, the VAD's 0.2 s after it; Whisper, then the judge."""
    audio = silence(0.5) + trimmed(speech) + silence(0.2)
    heard = await asyncio.to_thread(transcribe_pcm, load_whisper_model(), audio)
    transcript = TurnTranscript(heard.text, heard.result.words)
    return transcript, TurnVerdict.of(await detector.turn_is_complete(audio, 16000, done(transcript)))


async def fragment(sentence: str, before_word: str, engine: str) -> bytes:
    return first_part(await spoken_with_pause(sentence, before_word, 1.0, engine=engine), 0.9)


# Fragments Whisper tiny finishes with a word it made up (espeak-ng: the same audio every run). The model
# hears them as done (0.86-0.93); the made-up word is set aside, what is left goes on or is left open.
GUESSED = [
    # "I'd like to work a table for it.": Whisper gave ending after "for" 0.26 before writing "it" (0.44).
    pytest.param("I'd like to book a table for four people tonight.", "four", "for", "not done", id="for-it"),
]


@pytest.mark.parametrize(("sentence", "before_word", "last_heard", "verdict"), GUESSED)
async def test_a_word_whisper_made_up_at_the_cut_is_set_aside(
    speech_workers, sentence: str, before_word: str, last_heard: str, verdict: str
) -> None:
    detector = SmartTurnDetector()
    transcript, said = await what_the_models_make_of(
        await fragment(sentence, before_word, "espeak"), detector
    )
    heard = heard_words(transcript, transcript.words)
    assert transcript.words and heard != transcript, (transcript, transcript.words)
    assert heard.split()[-1].lower() == last_heard, (transcript, transcript.words)
    assert all(is_a_guess(w) for w in transcript.words[len(heard.split()) :]), transcript.words
    assert detector.last_probability is not None and detector.last_probability >= 0.5  # the sound says done
    assert said.value == verdict


# Piper speaks without its sampled noise here (the same audio every run); only the verdict is checked.
PIPER_FRAGMENTS = [
    ("Turn off the lights and close the blinds.", "close"),
    ("I'd like, um, a cup of coffee please.", "a cup"),
    pytest.param(
        "Please remind me to call the doctor tomorrow.",
        "call",
        # A known miss on some installs: Whisper tiny writes "Please remind me to call." (0.78 sure of
        # "call") over the silence after "to", and Smart Turn hears the fragment as finished (0.98). On
        # others (2026-12-03, a fresh machine) it writes "... to call" with "call" at 0.20, a guess: maybe.
        marks=pytest.mark.xfail(strict=False, reason="Whisper may complete the fragment with the next word"),
    ),
    ("I'd like to book a table for four people tonight.", "four"),
    ("Set a timer for the pasta please.", "pasta"),
    ("Can you tell me about the weather in Paris?", "the weather"),
]


@pytest.mark.parametrize(("sentence", "before_word"), PIPER_FRAGMENTS)
async def test_a_thinking_pause_in_a_natural_voice_is_never_done(
    speech_workers, sentence: str, before_word: str
) -> None:
    detector = SmartTurnDetector()
    transcript, verdict = await what_the_models_make_of(
        await fragment(sentence, before_word, "piper"), detector
    )
    assert verdict is not TurnVerdict.DONE, (
        sentence,
        transcript,
        transcript.words,
        detector.last_probability,
    )


FINISHED = [
    ("espeak", "What time is it?"),
    ("piper", "What time is it?"),
    ("espeak", "Can you tell me a joke about computers?"),
    ("piper", "Set a timer for ten minutes."),
    ("espeak", "I need a taxi and a hotel room."),
    ("piper", "I need a taxi and a hotel room."),
    ("espeak", "Tell me a joke."),
]


async def test_whisper_is_sure_of_the_last_word_of_a_finished_question(speech_workers) -> None:
    detector = SmartTurnDetector()
    for engine, text in FINISHED:
        transcript, verdict = await what_the_models_make_of(await spoken(text, engine=engine), detector)
        assert transcript.words and not is_a_guess(transcript.words[-1]), (engine, transcript.words)
        assert heard_words(transcript, transcript.words) == transcript
        # The words never stop a finished question; the sound may leave it "likely" (espeak's flat voice).
        assert verdict in (TurnVerdict.DONE, TurnVerdict.LIKELY), (engine, text, detector.last_probability)


async def test_a_sentence_whisper_leaves_open_is_at_most_a_maybe(speech_workers) -> None:
    detector = SmartTurnDetector()
    speech = await fragment("Please remind me to call the doctor tomorrow.", "call", "espeak")
    transcript, verdict = await what_the_models_make_of(speech, detector)
    assert transcript == "Please remind me"  # the "to" before the pause dropped, and no full stop
    assert detector.last_probability is not None and detector.last_probability >= 0.5  # the sound says done
    assert verdict is TurnVerdict.MAYBE


async def test_a_finished_question_the_model_hears_as_unfinished_is_likely_not_a_no(speech_workers) -> None:
    detector = SmartTurnDetector()
    transcript, verdict = await what_the_models_make_of(await spoken("What time is it?"), detector)  # espeak
    assert transcript == "What time is it?"
    assert detector.last_probability is not None and detector.last_probability < 0.5
    assert sure_of_the_end(transcript, transcript.words), transcript.words
    assert verdict is TurnVerdict.LIKELY
    transcript, verdict = await what_the_models_make_of(
        await spoken("What time is it?", engine="piper"), detector
    )
    assert detector.last_probability is not None and detector.last_probability >= 0.5
    assert verdict is TurnVerdict.DONE


async def test_a_finished_sentence_that_goes_on_after_a_pause_is_likely_not_done(speech_workers) -> None:
    """Why "likely" waits: "Could you play some music?" is whole, sure and scored unfinished (0.46), then
    "by the Beatles" follows a 0.8 s pause, heard by the VAD 0.2 s into it."""
    detector = SmartTurnDetector()
    pcm = await spoken_with_pause("Could you play some music by the Beatles?", "the Beatles", 0.8)
    transcript, verdict = await what_the_models_make_of(first_part(pcm, 0.7), detector)
    assert transcript == "Could you play some music?"
    assert sure_of_the_end(transcript, transcript.words), transcript.words
    assert verdict is TurnVerdict.LIKELY
    assert UserTurnParams().likely_silence_secs > 0.8 + 0.2 + 0.1  # the user goes on before the turn ends


async def test_a_thinking_pause_the_model_hears_as_unfinished_stays_not_done(speech_workers) -> None:
    detector = SmartTurnDetector()
    speech = await fragment("I'd like, um, a cup of coffee please.", "a cup", "espeak")
    transcript, verdict = await what_the_models_make_of(speech, detector)
    assert words_go_on(transcript), transcript  # "I'd like..."
    assert verdict is TurnVerdict.NOT_DONE
