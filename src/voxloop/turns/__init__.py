"""Turn-taking: voice activity detection in the pipeline and the user turn state machine."""

from __future__ import annotations

from ._controller import BotState, TurnController
from .params import AssistantAggregatorParams, UserTurnParams, VADParams
from .vad_processor import VADProcessor, apply_vad_params

__all__ = [
    "AssistantAggregatorParams",
    "BotState",
    "TurnController",
    "UserTurnParams",
    "VADParams",
    "VADProcessor",
    "apply_vad_params",
]
