"""Speech-to-text through an OpenAI-compatible ``/v1/audio/transcriptions`` endpoint (the official SDK).

Each VAD segment is sent as a WAV file (mono int16 at the input rate) with
``client.audio.transcriptions.create``.
``base_url`` (or ``OPENAI_BASE_URL``) points it at any compatible server: OpenAI, a local Whisper server, or
``voxloop.testing.openai_server.OpenAITestServer`` in tests.
"""

from __future__ import annotations

import io
import logging
import wave
from collections.abc import Mapping
from typing import Any

from ..stt import SegmentedSTTService, Transcript

logger = logging.getLogger("voxloop.services.openai")


def pcm_to_wav(audio: bytes, sample_rate: int, num_channels: int = 1) -> bytes:
    """A 16-bit PCM WAV file holding ``audio``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(num_channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(audio)
    return buffer.getvalue()


class OpenAISTTService(SegmentedSTTService):
    """Segmented speech-to-text with OpenAI's transcription API.

    Args:
        model: the transcription model (``gpt-4o-mini-transcribe``, ``gpt-4o-transcribe``, ``whisper-1`` ...).
        api_key, base_url: as for ``openai.AsyncOpenAI`` (default: ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``).
        timeout_secs, max_retries: per request (a voice user is waiting: short, one retry).
        prompt: text that guides the model (names, style), or None.
        client: an ``openai.AsyncOpenAI`` to use instead of creating one (it is then not closed here).
        language, user_id, pre_roll_secs, max_segment_secs: see :class:`SegmentedSTTService`.

    Settings at run time (``STTUpdateSettingsFrame``): ``language``, ``prompt``, ``model``.
    """

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini-transcribe",
        api_key: str | None = None,
        base_url: str | None = None,
        language: str | None = "en",
        prompt: str | None = None,
        client: Any = None,
        timeout_secs: float = 15.0,
        max_retries: int = 1,
        user_id: str = "",
        pre_roll_secs: float = 0.5,
        max_segment_secs: float = 30.0,
        name: str | None = None,
    ) -> None:
        super().__init__(
            language=language,
            user_id=user_id,
            pre_roll_secs=pre_roll_secs,
            max_segment_secs=max_segment_secs,
            name=name,
        )
        self.model = model
        self.prompt = prompt
        self._owns_client = client is None
        if client is None:
            from ._client import make_client  # lazy: only this service needs the SDK

            # A stalled request holds every later segment of the session: fail fast, retry once.
            client = make_client(
                "OpenAISTTService", api_key, base_url, timeout=timeout_secs, max_retries=max_retries
            )
        self._client = client
        self.set_metrics_model(model)

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._owns_client:
            await self._client.close()

    def _update_settings(self, settings: Mapping[str, Any]) -> None:
        rest = dict(settings)
        if "prompt" in rest:
            self.prompt = rest.pop("prompt")
        if "model" in rest:
            self.model = str(rest.pop("model"))
            self.set_metrics_model(self.model)
        super()._update_settings(rest)

    async def transcribe(self, audio: bytes, sample_rate: int) -> Transcript:
        options: dict[str, Any] = {"response_format": "json"}
        if self.language:
            options["language"] = self.language
        if self.prompt:
            options["prompt"] = self.prompt
        result = await self._client.audio.transcriptions.create(
            file=("audio.wav", pcm_to_wav(audio, sample_rate), "audio/wav"), model=self.model, **options
        )
        return Transcript(text=result.text, language=self.language, result=result)
