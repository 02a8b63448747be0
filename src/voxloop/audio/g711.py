"""G.711 (mu-law and A-law), the 8 kHz telephone codecs, with numpy.

The stdlib ``audioop`` is gone in Python 3.13, so the codecs are tables built once at import: a
65,536-entry table maps every PCM16 sample to its code (encoding is one numpy lookup), and a
256-entry table maps every code back to PCM16. The segment arithmetic is the one ITU-T G.711
defines (the same as every reference implementation), so the codes are bit-exact.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["alaw_to_pcm16", "pcm16_to_alaw", "pcm16_to_ulaw", "ulaw_to_pcm16"]

_Int = npt.NDArray[np.int64]

# Upper ends of the eight segments, on the 14-bit (mu-law) and 13-bit (A-law) magnitudes.
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_ULAW_BIAS = 0x84


def _every_sample() -> _Int:
    """All PCM16 values, in the order of their little-endian bit patterns read as uint16."""
    return np.arange(65536, dtype=np.int64).astype(np.uint16).view(np.int16).astype(np.int64)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = _every_sample() >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), 8159) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int64) & 0xFF
    value = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, _ULAW_BIAS - value, value - _ULAW_BIAS).astype(np.int16)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = _every_sample() >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    shift = np.where(segment < 2, 1, segment)
    code = (segment << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int64) ^ 0x55
    segment = (code & 0x70) >> 4
    value = ((code & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    value = np.where(segment > 1, value << np.maximum(segment - 1, 0), value)
    return np.where(code & 0x80, value, -value).astype(np.int16)


_ULAW_ENCODE = _ulaw_encode_table()
_ULAW_DECODE = _ulaw_decode_table()
_ALAW_ENCODE = _alaw_encode_table()
_ALAW_DECODE = _alaw_decode_table()


def _samples(pcm: bytes) -> npt.NDArray[np.uint16]:
    usable = len(pcm) - len(pcm) % 2  # a trailing odd byte is half a sample
    return np.frombuffer(pcm, dtype="<u2", count=usable // 2)


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """Little-endian PCM16 to mu-law, one byte per sample."""
    return _ULAW_ENCODE[_samples(pcm)].tobytes()


def ulaw_to_pcm16(data: bytes) -> bytes:
    """Mu-law to little-endian PCM16."""
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def pcm16_to_alaw(pcm: bytes) -> bytes:
    """Little-endian PCM16 to A-law, one byte per sample."""
    return _ALAW_ENCODE[_samples(pcm)].tobytes()


def alaw_to_pcm16(data: bytes) -> bytes:
    """A-law to little-endian PCM16."""
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()
