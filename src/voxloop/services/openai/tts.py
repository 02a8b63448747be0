"""Text-to-speech through an OpenAI-compatible ``/v1/audio/speech`` endpoint (the official SDK).

Each sentence is one request with ``response_format="pcm"`` (24 kHz mono int16), read as a stream so
its first audio is pushed while the rest is still arriving. ``base_url`` (or ``OPENAI_BASE_URL``) points it
at any compatible server, including ``voxloop.testing.openai_server.OpenAITestServer`` in tests.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

from ..tts import TTSOutput, TTSService

logger = logging.getLogger("voxloop.services.openai")

OPENAI_TTS_SAMPLE_RATE = 24000
_READ_BYTES = 4800  # 100 ms at 24 kHz


class OpenAITTSService(TTSService):
    """Speaks with OpenAI's speech API, streamed.

    Args:
        model: ``gpt-4o-mini-tts`` (default), ``tts-1``, ``tts-1-hd`` ...
        voice: ``alloy``, ``coral``, ``nova`` ... (or a custom voice id).
        instructions: how to speak (gpt-4o-mini-tts only), or None.
        speed: 0.25 to 4.0, or None for the default.
        api_key, base_url: as for ``openai.AsyncOpenAI`` (default: ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``).
        timeout_secs, max_retries: per request (a voice user is waiting: short, one retry).
        client: an ``openai.AsyncOpenAI`` to use instead of creating one (it is then not closed here).

    Settings at run time (``TTSUpdateSettingsFrame``): ``voice``, ``model``, ``instructions``, ``speed``.
    """

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        instructions: str | None = None,
        speed: float | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        client: Any = None,
        timeout_secs: float = 30.0,
        max_retries: int = 1,
        **kwargs: Any,
    ) -> None:
        settings: dict[str, Any] = {"model": model, "voice": voice}
        if instructions is not None:
            settings["instructions"] = instructions
        if speed is not None:
            settings["speed"] = speed
        super().__init__(sample_rate=OPENAI_TTS_SAMPLE_RATE, settings=settings, **kwargs)
        self._owns_client = client is None
        if client is None:
            from ._client import make_client  # lazy: only this service needs the SDK

            # A stalled request holds the reply: fail fast (the SDK's default is 10 minutes), retry once.
            client = make_client(
                "OpenAITTSService", api_key, base_url, timeout=timeout_secs, max_retries=max_retries
            )
        self._client = client
        self.set_metrics_model(model)

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._owns_client:
            await self._client.close()

    async def update_settings(self, settings: dict[str, Any]) -> None:
        await super().update_settings(settings)
        self.set_metrics_model(str(self.settings["model"]))

    async def run_tts(self, text: str) -> AsyncGenerator[TTSOutput, None]:
        options: dict[str, Any] = {}
        if self.settings.get("instructions"):
            options["instructions"] = self.settings["instructions"]
        if self.settings.get("speed") is not None:
            options["speed"] = float(self.settings["speed"])
        async with self._client.audio.speech.with_streaming_response.create(
            model=str(self.settings["model"]),
            voice=self.settings["voice"],
            input=text,
            response_format="pcm",
            **options,
        ) as response:
            async for chunk in response.iter_bytes(_READ_BYTES):
                yield chunk
