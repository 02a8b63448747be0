"""Whisper hears the microphone as well through the new resampler as through soxr "MQ" before it.

Every shared test WAV (16 kHz speech) is made into what a client sends: 48 kHz (a WebRTC
microphone) and 8 kHz (a phone line), both with soxr's very high quality, offline. It then goes
through the real input path (``BaseInputTransport``, 20 ms at a time) to 16 kHz, and through the
converter the input had before (soxr ``ResampleStream``: "MQ" going down, "QQ" going up), and the
real Whisper tiny.en model transcribes both. The new path must get every word the old one got.

Two things keep the comparison about the resampler and not about chance:

- The old converter's int16 output was dithered by soxr with a fresh random seed, so the reference
  changed from run to run. It runs in float here and is rounded, so it is the same every run.
- On some clips Whisper tiny sits at a decision boundary: two faithful resamplings (soxr "VHQ" and "HQ",
  in one go) are heard as different words. On this project's machine on 2026-12-03 that was utt04 at 48 kHz
  ("turn off the lights in the kitchen" / "turn off my light syndication"), the noisy two-utterance clip
  at 48 kHz and the clean one at 8 kHz. There, a difference 55 dB down from the speech flips the words.
  Such a clip is reported and left out of the comparison, and at least 5 of the 7 clips must be left in.
"""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest
import soxr

from helpers.paths import AUDIO
from voxloop.frames import InputAudioRawFrame
from voxloop.services.local.whisper import load_whisper_model, transcribe_pcm
from voxloop.testing import PipelineHarness, load_wav
from voxloop.testing.stt_accuracy import word_errors, words
from voxloop.transports.base_input import BaseInputTransport
from voxloop.transports.params import TransportParams

pytestmark = pytest.mark.timeout(300)

CLIPS = sorted(p.stem for p in AUDIO.glob("*.wav"))
TAIL_SECS = 0.5  # a microphone keeps sending: silence after the speech lets out what a filter holds


def said(name: str) -> list[str]:
    """The words of a clip: its text, or those of the clips its text says it is made of."""
    text = (AUDIO / f"{name}.txt").read_text()
    parts = re.findall(r"\b(utt\d+_[a-z]+|vad_two_utts)\b", text)
    return [w for part in parts for w in said(part)] if parts else words(text)


def as_sent(name: str, rate: int) -> np.ndarray:
    pcm, source, _ = load_wav(AUDIO / f"{name}.wav")
    speech = np.frombuffer(pcm + bytes(2 * int(source * TAIL_SECS)), dtype="<i2").astype(np.float64)
    return np.clip(np.rint(soxr.resample(speech, source, rate, quality="VHQ")), -32768, 32767).astype("<i2")


async def through_the_input(samples: np.ndarray, rate: int) -> bytes:
    transport = BaseInputTransport(TransportParams(audio_in_max_ahead_secs=None))
    step = rate // 50
    async with PipelineHarness(transport) as h:
        for start in range(0, len(samples), step):
            await transport.push_audio(samples[start : start + step].tobytes(), rate, 1)
    frames = h.down_recorder.of_type(InputAudioRawFrame)
    assert {f.sample_rate for f in frames} == {16000}
    return b"".join(f.audio for f in frames)


def through_the_old_converter(samples: np.ndarray, rate: int) -> bytes:
    stream = soxr.ResampleStream(rate, 16000, 1, dtype="float32", quality="MQ" if rate > 16000 else "QQ")
    step = rate // 50
    floats = samples.astype(np.float32)
    out = [stream.resample_chunk(floats[start : start + step]) for start in range(0, len(floats), step)]
    return as_int16(np.concatenate(out))


def as_int16(samples: np.ndarray) -> bytes:
    return np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()


def heard_alike_by_two_faithful_resamplings(model: object, samples: np.ndarray, rate: int) -> bool:
    """Whether Whisper hears the same words after soxr "VHQ" and "HQ" (one go, to 16 kHz)."""
    heard = [
        words(
            transcribe_pcm(
                model, as_int16(soxr.resample(samples.astype(np.float64), rate, 16000, quality=q))
            ).text
        )
        for q in ("VHQ", "HQ")
    ]
    return heard[0] == heard[1]


@pytest.mark.parametrize("rate", [48000, 8000])
async def test_whisper_hears_every_clip_as_well_as_through_soxr_mq(rate: int) -> None:
    model = await asyncio.to_thread(load_whisper_model)
    old_errors = new_errors = 0
    report = []
    compared = []
    for name in CLIPS:
        truth = said(name)
        samples = as_sent(name, rate)
        if not await asyncio.to_thread(heard_alike_by_two_faithful_resamplings, model, samples, rate):
            report.append(f"{name}: left out, Whisper hears it differently after soxr VHQ and HQ")
            continue
        compared.append(name)
        new = await through_the_input(samples, rate)
        old = through_the_old_converter(samples, rate)
        heard_new = words((await asyncio.to_thread(transcribe_pcm, model, new)).text)
        heard_old = words((await asyncio.to_thread(transcribe_pcm, model, old)).text)
        new_errors += word_errors(" ".join(truth), " ".join(heard_new))
        old_errors += word_errors(" ".join(truth), " ".join(heard_old))
        report.append(f"{name}: old {' '.join(heard_old)!r} new {' '.join(heard_new)!r}")
        assert set(heard_old) & set(truth) <= set(heard_new), report[-1]  # every right word kept
    assert len(compared) >= 5, report
    total = sum(len(said(n)) for n in compared)
    wer = f"WER old {old_errors / total:.3f} new {new_errors / total:.3f}"
    print(f"{rate} Hz -> 16 kHz: {wer}", *report, sep="\n")
    assert new_errors <= old_errors, report
