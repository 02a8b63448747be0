"""The TTS service base for engines that run in the shared speech worker process."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from ...pipeline import FrameProcessorSetup
from ..tts import TTSOutput, TTSService, WordTiming
from .speech_engines import SpeechWorker, WordMark, shared_speech_worker


class WorkerTTSService(TTSService):
    """Speaks through the process-wide worker of ``engine`` (started on first use, shared by sessions)."""

    engine: str = ""

    def __init__(
        self,
        *,
        worker_args: Sequence[str] = (),
        worker: SpeechWorker | None = None,
        settings: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(sample_rate=22050, settings=settings, **kwargs)
        self._worker = worker or shared_speech_worker(self.engine, worker_args)
        self.set_metrics_model(self.engine)

    @property
    def worker(self) -> SpeechWorker:
        return self._worker

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
        info = self._worker.info
        if info is not None:
            self.sample_rate = info.sample_rate

    async def run_tts(self, text: str) -> AsyncGenerator[TTSOutput, None]:
        request = await self._worker.synthesize(text, self.settings)
        info = self._worker.info
        if info is not None:
            self.sample_rate = info.sample_rate
        async with request:
            async for event in request:
                if isinstance(event, WordMark):
                    yield WordTiming(event.sample, event.start, event.end)
                else:
                    yield event
