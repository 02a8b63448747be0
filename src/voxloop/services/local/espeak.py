"""EspeakTTSService: espeak-ng (GPL-3.0) run in the shared speech worker process, with word timings."""

from __future__ import annotations

from typing import Any

from ._worker_tts import WorkerTTSService
from .speech_engines import SpeechWorker


class EspeakTTSService(WorkerTTSService):
    """A robotic but instant and deterministic voice: 22050 Hz, word timings.

    espeak-ng comes from the ``espeakng-loader`` package (else the system's ``libespeak-ng.so.1``) and is
    only ever loaded in the worker process. Settings: ``voice`` (an espeak voice name, default ``en-us``),
    ``rate`` (words per minute, default 150).
    """

    engine = "espeak"

    def __init__(
        self,
        *,
        voice: str = "en-us",
        rate: int = 150,
        worker: SpeechWorker | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(worker=worker, settings={"voice": voice, "rate": rate}, **kwargs)
