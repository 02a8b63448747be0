"""What audio a client may send: checked before any conversion work, for every transport.

A client declares each frame's sample rate and channel count, and the server converts what it
declares. Left unchecked, a tiny frame declaring 1 Hz would be upsampled 16,000 times (a 2 kB frame
becomes 32 MB), so the format is checked first and anything outside these bounds is refused:

- a sample rate from :data:`SAMPLE_RATES` (the rates real devices, browsers and telephony use;
  a fixed set also bounds the resampler configurations a client can make the server build),
- 1 or 2 channels,
- a whole number of 16-bit samples per channel,
- at most :data:`MAX_FRAME_SECS` of audio in one frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["MAX_CHANNELS", "MAX_FRAME_SECS", "SAMPLE_RATES", "AudioFormatProblem", "check_audio_format"]

SAMPLE_RATES: Final = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
MAX_CHANNELS: Final = 2
#: Microphones send 10 to 40 ms per frame; a few seconds covers any client that batches.
MAX_FRAME_SECS: Final = 10.0

ProblemKind = Literal["sample_rate", "num_channels", "length", "size"]


@dataclass(frozen=True)
class AudioFormatProblem:
    """Why a frame was refused; ``kind`` groups alike problems (for reporting each kind once)."""

    kind: ProblemKind
    message: str


def check_audio_format(
    byte_count: int, sample_rate: int, num_channels: int, *, max_frame_secs: float = MAX_FRAME_SECS
) -> AudioFormatProblem | None:
    """None when a frame of 16-bit PCM with this declared format may be converted, else why not."""
    if sample_rate not in SAMPLE_RATES:
        rates = ", ".join(str(rate) for rate in sorted(SAMPLE_RATES))
        return AudioFormatProblem(
            "sample_rate", f"audio sample rate {sample_rate} Hz is not supported (use {rates})"
        )
    if not 1 <= num_channels <= MAX_CHANNELS:
        return AudioFormatProblem(
            "num_channels", f"audio with {num_channels} channels is not supported (use 1 or 2)"
        )
    frame_bytes = 2 * num_channels
    if byte_count % frame_bytes:
        return AudioFormatProblem(
            "length",
            f"audio of {byte_count} bytes is not a whole number of 16-bit samples "
            f"for {num_channels} channel(s)",
        )
    limit = int(max_frame_secs * sample_rate) * frame_bytes
    if byte_count > limit:
        return AudioFormatProblem(
            "size",
            f"audio frame of {byte_count} bytes holds more than {max_frame_secs:g} s "
            f"at {sample_rate} Hz (at most {limit} bytes per frame)",
        )
    return None
