"""Speech with a thinking pause in it, for tests and benchmarks of turn-taking (espeak-ng and piper, offline).

The sentence is synthesised whole, so the words before the pause keep the intonation of a sentence that goes
on (synthesising the fragment alone would end it like a finished statement); the silence goes where the
word after the pause starts: where espeak-ng's word marks say, or, for piper (which gives no word timings),
where Whisper's word alignment puts it. Either way the cut lands on the quietest 5 ms just before the word.
"""

from __future__ import annotations

import re

import numpy as np

from ..services.local import shared_speech_worker
from ..services.local.speech_engines import WordMark

SPEECH_RATE = 16000
_ESPEAK_WPM = 140  # what Whisper tiny.en transcribes exactly (the tests' and the shared WAVs' rate)

# The pause set (bench/voice.py and the end-to-end turn-taking tests): a sentence, the word a thinking
# pause comes before, the pause in seconds; each is said by both voices and must stay one turn.
PAUSE_SET: tuple[tuple[str, str, float], ...] = (
    ("Turn off the lights and close the blinds.", "close", 1.2),
    ("I'd like, um, a cup of coffee please.", "a cup", 0.8),
    ("I want to know about the weather in Paris.", "the weather", 1.0),
    ("Please remind me to call the doctor tomorrow.", "call", 0.6),
    ("I'd like to book a table for four people tonight.", "four", 0.9),
    ("Set a timer for the pasta please.", "pasta", 1.0),
    ("Can you tell me about the weather in Paris?", "the weather", 1.1),
    ("I need a taxi and a hotel room.", "a hotel", 0.7),
    ("Remind me to buy, um, some milk tomorrow.", "some milk", 0.9),
    ("Could you play some music by the Beatles?", "the Beatles", 0.8),
    ("I was wondering if you could help me with my homework.", "you could", 1.2),
    ("What's the best way to get to the airport?", "get", 0.7),
)
PAUSE_VOICES = ("espeak", "piper")


def repeatable_voice(engine: str) -> dict[str, float]:
    """Synthesis settings that give the same audio every run: espeak-ng at the rate Whisper tiny.en
    transcribes exactly, piper without its sampled noise."""
    return {"rate": _ESPEAK_WPM} if engine == "espeak" else {"noise_scale": 0.0, "noise_w_scale": 0.0}


async def spoken_with_pause(
    text: str, before_word: str, pause_secs: float, *, rate: int = SPEECH_RATE, engine: str = "espeak"
) -> bytes:
    """``text`` said in one go by ``engine`` ("espeak" or "piper"), with ``pause_secs`` of silence inserted
    just before ``before_word`` (its first occurrence), as mono int16 PCM at ``rate``."""
    import soxr  # type: ignore[import-untyped]

    if engine not in ("espeak", "piper"):
        raise ValueError(f"unknown speech engine {engine!r}")
    at = text.index(before_word)
    worker = shared_speech_worker(engine)
    info = await worker.start()
    pcm = bytearray()
    cut: int | None = None
    async with await worker.synthesize(text, repeatable_voice(engine)) as request:
        async for item in request:
            if isinstance(item, bytes):
                pcm += item
            elif isinstance(item, WordMark) and item.start <= at < item.end + 1 and cut is None:
                cut = item.sample
    samples = np.frombuffer(bytes(pcm), dtype="<i2")
    # The mark can fall a little into the word: cut at the quietest 5 ms within the 100 ms before it.
    window, span = round(0.005 * info.sample_rate), round(0.1 * info.sample_rate)
    start = max(0, (cut or 0) - span)
    if cut is None and engine == "piper":
        # Whisper's alignment is rougher: from just before the end of the word before to this one's start.
        aligned = _aligned_word(samples, info.sample_rate, text, at)
        if aligned is not None:
            start, cut = max(0, min(aligned) - span // 2), max(aligned)
    if cut is None:
        raise ValueError(f"no word mark for {before_word!r} in {text!r}")
    end = cut
    energy = np.convolve(np.square(samples[start:end].astype(np.float64)), np.ones(window), mode="valid")
    if energy.size:
        quietest = int(np.argmin(energy))
        if engine == "piper":
            # Between words that run together the quietest point can be inside the next word's onset
            # (the "f" of "for four"): go back to where that quiet stretch begins.
            quiet = energy[quietest] * 8 + 1e-4 * float(energy.max())
            while quietest > 0 and energy[quietest - 1] <= quiet:
                quietest -= 1
        cut = start + quietest + window // 2
    gap = np.zeros(round(pause_secs * info.sample_rate), dtype="<i2")
    joined = np.concatenate((samples[:cut], gap, samples[cut:]))
    resampled = soxr.resample(joined, info.sample_rate, rate, quality="HQ")
    return np.asarray(resampled, dtype="<i2").tobytes()


def _aligned_word(samples: np.ndarray, sample_rate: int, text: str, at: int) -> tuple[int, int] | None:
    """Where the word before the one at character ``at`` of ``text`` ends, and where that one starts, in
    ``samples`` (by Whisper's word alignment, faster-whisper's ``word_timestamps``), or None if Whisper
    heard other words there."""
    import soxr

    from ..services.local.whisper import WHISPER_SAMPLE_RATE, load_whisper_model

    audio = soxr.resample(samples.astype(np.float32) / 32768.0, sample_rate, WHISPER_SAMPLE_RATE)
    segments, _ = load_whisper_model().transcribe(
        np.asarray(audio, dtype=np.float32),
        language="en",
        beam_size=5,
        word_timestamps=True,
        vad_filter=False,
    )
    aligned = [w for s in segments for w in s.words]
    heard = [re.sub(r"[^a-z0-9']", "", w.word.lower()) for w in aligned]
    wanted = re.sub(r"[^a-z0-9']", "", text[at:].split()[0].lower())
    before = sum(re.sub(r"[^a-z0-9']", "", w.lower()) == wanted for w in text[:at].split())
    found = [i for i, w in enumerate(heard) if w == wanted]  # the same occurrence as in ``text``
    if before >= len(found):
        return None
    word = found[before]
    previous_end = aligned[word - 1].end if word else aligned[word].start
    return round(previous_end * sample_rate), round(aligned[word].start * sample_rate)
