"""Audio, image and keypad frames, in and out."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ._base import DataFrame, SystemFrame


@dataclass(eq=False)
class AudioRawFrame:
    """Content mixin: 16-bit little-endian PCM, interleaved when there are several channels."""

    audio: bytes
    sample_rate: int
    num_channels: int

    @property
    def num_frames(self) -> int:
        """Samples per channel."""
        return len(self.audio) // (self.num_channels * 2)

    @property
    def duration_secs(self) -> float:
        """How long this audio plays."""
        return self.num_frames / self.sample_rate if self.sample_rate else 0.0


@dataclass(eq=False)
class InputAudioRawFrame(SystemFrame, AudioRawFrame):
    """Audio from the user (a system frame, so it never waits behind bot output)."""


@dataclass(eq=False)
class UserAudioRawFrame(InputAudioRawFrame):
    """Input audio of one user, in multi-user rooms."""

    user_id: str = ""


@dataclass(eq=False)
class OutputAudioRawFrame(DataFrame, AudioRawFrame):
    """Audio for the client to play."""


@dataclass(eq=False)
class TTSAudioRawFrame(OutputAudioRawFrame):
    """Audio produced by a TTS service for one utterance (``context_id``)."""

    context_id: str | None = None


@dataclass(eq=False)
class SpeechOutputAudioRawFrame(OutputAudioRawFrame):
    """A continuous output stream (silence included) from a speech-to-speech service."""


@dataclass(eq=False)
class ImageRawFrame:
    """Content mixin: an image (raw pixels or encoded bytes in ``format``)."""

    image: bytes
    size: tuple[int, int]
    format: str | None


@dataclass(eq=False)
class InputImageRawFrame(SystemFrame, ImageRawFrame):
    """A camera or screen image from the client."""


@dataclass(eq=False)
class UserImageRawFrame(InputImageRawFrame):
    """An image of one user; optionally with a question about it for the LLM."""

    user_id: str = ""
    text: str | None = None
    append_to_context: bool = False


@dataclass(eq=False)
class OutputImageRawFrame(DataFrame, ImageRawFrame):
    """An image for the client to show."""

    sync_with_audio: bool = field(init=False, default=False)


@dataclass(eq=False)
class URLImageRawFrame(OutputImageRawFrame):
    """An output image that also has a URL."""

    url: str | None = None


class KeypadEntry(StrEnum):
    """A telephone keypad button."""

    ONE = "1"
    TWO = "2"
    THREE = "3"
    FOUR = "4"
    FIVE = "5"
    SIX = "6"
    SEVEN = "7"
    EIGHT = "8"
    NINE = "9"
    ZERO = "0"
    POUND = "#"
    STAR = "*"


@dataclass(eq=False)
class InputDTMFFrame(SystemFrame):
    """A keypad button pressed by the user."""

    button: KeypadEntry


@dataclass(eq=False)
class OutputDTMFFrame(DataFrame):
    """Keypad tones to send, in order with the audio."""

    button: KeypadEntry


@dataclass(eq=False)
class OutputDTMFUrgentFrame(SystemFrame):
    """Keypad tones to send at once."""

    button: KeypadEntry
