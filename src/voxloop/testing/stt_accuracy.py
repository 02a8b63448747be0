"""A speech-to-text accuracy set, and word errors: to check one recogniser setting against another.

The set: recorded WAVs with their texts, and sentences spoken by the local engines (espeak-ng, piper):
questions, and the pause set of the turn-taking benchmark (each sentence whole with its thinking pause,
and the two fragments on either side of the pause, which is what a speculative transcription hears).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..services.local import shared_speech_worker
from .rtvi_client import load_wav
from .speech import PAUSE_SET, spoken_with_pause

RATE = 16000
# The first six sentences of the pause set (bench/voice.py): (sentence, the word the pause comes before,
# pause seconds).
PAUSED = PAUSE_SET[:6]
QUESTIONS = ("What time is it?",)
_LEAD_SECS, _TAIL_SECS = 0.5, 0.3  # around spoken clips, about what a VAD segment keeps
_NUMBERS = {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "10": "ten", "20": "twenty"}


@dataclass(frozen=True)
class Clip:
    """One utterance: a name, what was said, and 16 kHz mono int16 PCM."""

    name: str
    text: str
    pcm: bytes

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, small numbers spelled out ("10" -> "ten")."""
    return [_NUMBERS.get(w, w) for w in re.findall(r"[a-z0-9']+", text.lower())]


def word_errors(reference: str, heard: str) -> int:
    """Substitutions + deletions + insertions between the words of ``reference`` and ``heard``."""
    ref, hyp = words(reference), words(heard)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1]


def wav_clips(folder: Path) -> list[Clip]:
    """Every 16 kHz mono WAV in ``folder`` whose words are known: those of ``utterances.txt`` (id, tab,
    text), and ``vad_two_utts*`` (utt01 then utt04, as the folder's README says)."""
    texts = dict(line.split("\t", 1) for line in (folder / "utterances.txt").read_text().splitlines() if line)
    clips = []
    for path in sorted(folder.glob("*.wav")):
        if path.stem.startswith("vad_two_utts"):
            text = f"{texts['utt01_weather']} {texts['utt04_lights']}"
        elif path.stem in texts:
            text = texts[path.stem]
        else:
            continue
        pcm, rate, channels = load_wav(path)
        if (rate, channels) != (RATE, 1):
            raise ValueError(f"{path}: {rate} Hz, {channels} channels (16 kHz mono expected)")
        clips.append(Clip(path.stem, text.strip(), pcm))
    return clips


async def spoken_clips(engine: str, questions: tuple[str, ...] = QUESTIONS) -> list[Clip]:
    """``questions`` and the pause set (whole, before and after the pause) spoken by ``engine``."""
    clips = [Clip(f"{engine}: {q}", q, _padded(await _say(engine, q))) for q in questions]
    for text, word, pause in PAUSED:
        at = text.index(word)
        before, after = text[:at].strip(), text[at:]
        if engine == "espeak":  # one synthesis, the pause put where espeak says the word starts
            whole = await spoken_with_pause(text, word, pause, rate=RATE)
            cut = _middle_of_longest_silence(whole)
            first, second = whole[:cut], whole[cut:]
        else:  # no word marks: the two parts said apart
            first, second = await _say(engine, before), await _say(engine, after)
            whole = first + bytes(2 * round(pause * RATE)) + second
        clips += [
            Clip(f"{engine} pause: {text}", text, _padded(whole)),
            Clip(f"{engine} before: {text}", before, _padded(first)),
            Clip(f"{engine} after: {text}", after, _padded(second)),
        ]
    return clips


async def _say(engine: str, text: str) -> bytes:
    import soxr  # type: ignore[import-untyped]

    worker = shared_speech_worker(engine)
    info = await worker.start()
    pcm = bytearray()
    async with await worker.synthesize(text, {"rate": 140} if engine == "espeak" else {}) as request:
        async for item in request:
            if isinstance(item, bytes):
                pcm += item
    samples = np.frombuffer(bytes(pcm), dtype="<i2")
    return np.asarray(soxr.resample(samples, info.sample_rate, RATE, quality="HQ"), dtype="<i2").tobytes()


def _padded(pcm: bytes) -> bytes:
    return bytes(2 * round(_LEAD_SECS * RATE)) + pcm + bytes(2 * round(_TAIL_SECS * RATE))


def _middle_of_longest_silence(pcm: bytes, level: int = 30) -> int:
    """Byte offset of the middle of the longest run of near-zero samples (the inserted pause)."""
    quiet = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)) < level
    edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.astype(np.int8), [0]))))
    starts, ends = edges[::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    return int(starts[longest] + ends[longest]) // 2 * 2
