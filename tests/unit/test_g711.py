"""G.711 with numpy: bit-exact with the reference codec, and close to the signal it encodes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from voxloop.audio.g711 import alaw_to_pcm16, pcm16_to_alaw, pcm16_to_ulaw, ulaw_to_pcm16

EVERY_SAMPLE = np.arange(-32768, 32768, dtype="<i2").tobytes()
EVERY_CODE = bytes(range(256))


def reference() -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")  # the stdlib codec, until Python 3.13 removed it


def test_mu_law_is_bit_exact_with_the_reference_for_every_sample_and_code() -> None:
    audioop = reference()
    assert pcm16_to_ulaw(EVERY_SAMPLE) == audioop.lin2ulaw(EVERY_SAMPLE, 2)  # type: ignore[attr-defined]
    assert ulaw_to_pcm16(EVERY_CODE) == audioop.ulaw2lin(EVERY_CODE, 2)  # type: ignore[attr-defined]


def test_a_law_is_bit_exact_with_the_reference_for_every_sample_and_code() -> None:
    audioop = reference()
    assert pcm16_to_alaw(EVERY_SAMPLE) == audioop.lin2alaw(EVERY_SAMPLE, 2)  # type: ignore[attr-defined]
    assert alaw_to_pcm16(EVERY_CODE) == audioop.alaw2lin(EVERY_CODE, 2)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("encode", "decode"), [(pcm16_to_ulaw, ulaw_to_pcm16), (pcm16_to_alaw, alaw_to_pcm16)]
)
def test_a_round_trip_keeps_the_signal_within_the_codecs_quantisation(encode, decode) -> None:
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 20000).astype("<i2")
    coded = encode(tone.tobytes())
    assert len(coded) == len(tone)  # one byte per sample
    back = np.frombuffer(decode(coded), dtype="<i2").astype(np.float64)
    snr = 10 * np.log10(np.sum(tone.astype(np.float64) ** 2) / np.sum((back - tone) ** 2))
    assert snr > 30  # G.711's ~38 dB on a loud tone


def test_a_trailing_half_sample_is_ignored_and_empty_input_is_empty() -> None:
    assert pcm16_to_ulaw(b"\x00\x10\x7f") == pcm16_to_ulaw(b"\x00\x10")
    assert pcm16_to_ulaw(b"") == b"" and ulaw_to_pcm16(b"") == b""
