"""Turn-taking: voice activity detection in the pipeline and the user turn state machine."""

from __future__ import annotations

from ._controller import (
    Action,
    BotState,
    PauseBot,
    ResumeBot,
    SpeechRejected,
    TurnController,
    TurnEnded,
    TurnStarted,
    TurnVerdict,
    UserIdle,
)
from .end_of_turn import EndOfTurnDetector, SmartTurnDetector, SpokenWord, TurnTranscript
from .params import AssistantAggregatorParams, UserTurnParams, VADParams
from .vad_processor import VADProcessor, apply_vad_params

__all__ = [
    "Action",
    "AssistantAggregatorParams",
    "BotState",
    "EndOfTurnDetector",
    "PauseBot",
    "ResumeBot",
    "SmartTurnDetector",
    "SpeechRejected",
    "SpokenWord",
    "TurnController",
    "TurnEnded",
    "TurnStarted",
    "TurnTranscript",
    "TurnVerdict",
    "UserIdle",
    "UserTurnParams",
    "VADParams",
    "VADProcessor",
    "apply_vad_params",
]
