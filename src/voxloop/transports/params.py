"""Settings shared by every transport."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TransportParams:
    """How a transport moves audio. Rates left as None follow the pipeline's (16 kHz in, 24 kHz out).

    ``audio_out_chunk_ms``: size of each audio write (20 to 40 ms). ``audio_out_lead_ms``: how far
    ahead of real time audio is sent, so the client's player never runs dry. ``bot_stop_grace_secs``:
    how long after the last audio has played the bot counts as stopped speaking.
    ``audio_in_max_ahead_secs``: how far a client's audio may run ahead of real time (a burst after
    a network stall) before further frames are dropped; a microphone cannot talk faster than time
    passes, so only a hostile or broken client gets there. None: no limit.
    """

    audio_in_enabled: bool = True
    audio_in_sample_rate: int | None = None
    audio_in_stream_on_start: bool = True
    audio_in_max_ahead_secs: float | None = 2.0
    audio_out_enabled: bool = True
    audio_out_sample_rate: int | None = None
    audio_out_chunk_ms: int = 40
    audio_out_lead_ms: int = 100
    bot_stop_grace_secs: float = 0.1
    bot_speaking_period_secs: float = 0.2

    def __post_init__(self) -> None:
        if not 10 <= self.audio_out_chunk_ms <= 100:
            raise ValueError("audio_out_chunk_ms must be between 10 and 100")
        if self.audio_in_max_ahead_secs is not None and self.audio_in_max_ahead_secs < 0:
            raise ValueError("audio_in_max_ahead_secs cannot be negative")
        if self.audio_out_lead_ms < 0:
            raise ValueError("audio_out_lead_ms cannot be negative")
