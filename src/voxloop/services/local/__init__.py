"""Offline services: they run on this machine, with no network and no keys."""

from __future__ import annotations

from .demo_agent import DemoAgentLLM
from .espeak import EspeakTTSService
from .piper import PiperTTSService
from .speech_engines import (
    SpeechWorker,
    SpeechWorkerError,
    WorkerInfo,
    close_speech_workers,
    preload_speech_worker,
    shared_speech_worker,
)
from .whisper import WhisperSTTService, load_whisper_model

__all__ = [
    "WhisperSTTService",
    "load_whisper_model",
    "DemoAgentLLM",
    "EspeakTTSService",
    "PiperTTSService",
    "SpeechWorker",
    "SpeechWorkerError",
    "WorkerInfo",
    "close_speech_workers",
    "preload_speech_worker",
    "shared_speech_worker",
]
