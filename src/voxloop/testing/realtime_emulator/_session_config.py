"""The emulated session object: its defaults, and how a ``session.update`` merges into it."""

from __future__ import annotations

import copy
import time
from typing import Any

from ._responses import new_id

DEFAULT_INSTRUCTIONS = "You are a helpful, witty, and friendly AI. Keep your answers short."
_SERVER_VAD_DEFAULTS = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
_SEMANTIC_VAD_DEFAULTS = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}


def default_session(model: str) -> dict[str, Any]:
    """The session object the emulator starts a connection with (what ``session.created`` carries)."""
    pcm = {"type": "audio/pcm", "rate": 24000}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": int(time.time()) + 3600,
        "include": None,
        "audio": {
            "input": {
                "format": dict(pcm),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(_SERVER_VAD_DEFAULTS),
            },
            "output": {"format": dict(pcm), "voice": "marin", "speed": 1.0},
        },
    }


def merge_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """The session after an update: nested objects merge, lists and nulls replace, and a turn detection of a
    new type starts from that type's defaults."""
    merged = copy.deepcopy(current)
    for key, value in update.items():
        if key == "turn_detection" and isinstance(value, dict):
            old = merged.get(key)
            if not isinstance(old, dict) or old.get("type") != value.get("type"):
                old = dict(
                    _SERVER_VAD_DEFAULTS if value.get("type") == "server_vad" else _SEMANTIC_VAD_DEFAULTS
                )
            merged[key] = {**old, **value}
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_session(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
