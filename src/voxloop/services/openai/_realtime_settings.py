"""Settings of the OpenAI Realtime service, and the ``session.update`` payload built from them.

Everything the GA session accepts and a voice app changes is here. ``turn_detection`` is a
:class:`ServerVAD`, a :class:`SemanticVAD`, or None: no server turn detection, so our own VAD and user
aggregator decide the turns and the service commits the input buffer and asks for each response.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

SAMPLE_RATE = 24000
PCM_FORMAT = {"type": "audio/pcm", "rate": SAMPLE_RATE}
DEFAULT_MODEL = "gpt-realtime"


@dataclass
class ServerVAD:
    """The server's voice activity detection ends turns after ``silence_duration_ms`` of silence."""

    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    create_response: bool = True
    interrupt_response: bool = True

    def to_param(self) -> dict[str, Any]:
        param: dict[str, Any] = {"type": "server_vad"}
        for name in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
            if (value := getattr(self, name)) is not None:
                param[name] = value
        param["create_response"] = self.create_response
        param["interrupt_response"] = self.interrupt_response
        return param


@dataclass
class SemanticVAD:
    """The server decides turn ends from what the user says (``eagerness``: low, medium, high, auto)."""

    eagerness: Literal["low", "medium", "high", "auto"] | None = None
    create_response: bool = True
    interrupt_response: bool = True

    def to_param(self) -> dict[str, Any]:
        param: dict[str, Any] = {"type": "semantic_vad"}
        if self.eagerness is not None:
            param["eagerness"] = self.eagerness
        param["create_response"] = self.create_response
        param["interrupt_response"] = self.interrupt_response
        return param


TurnDetection = ServerVAD | SemanticVAD


@dataclass
class InputTranscription:
    """Transcription of the user's audio (what the context and the client's ``user-transcription`` get)."""

    model: str = "gpt-4o-transcribe"
    language: str | None = None
    prompt: str | None = None

    def to_param(self) -> dict[str, Any]:
        param: dict[str, Any] = {"model": self.model}
        if self.language:
            param["language"] = self.language
        if self.prompt:
            param["prompt"] = self.prompt
        return param


@dataclass
class RealtimeSettings:
    """What the session is configured with (changeable during the session, see :meth:`update`).

    - ``instructions``: the system prompt; kept in step with the context's system message (a context
      that starts with one wins at start; a later change here rewrites that message).
    - ``modality``: ``"audio"`` (speech, with its transcript) or ``"text"``.
    - ``input_transcription``: None turns transcription off (the context then gets no user text).
    - ``noise_reduction``: ``"near_field"``, ``"far_field"`` or None.
    - ``turn_detection``: :class:`ServerVAD` (default), :class:`SemanticVAD`, or None (our VAD decides).
    - ``temperature``: kept for API symmetry with the chat services; the GA Realtime protocol has no
      temperature, so it is never sent.
    """

    model: str = DEFAULT_MODEL
    instructions: str | None = None
    voice: str = "marin"
    speed: float | None = None
    modality: Literal["audio", "text"] = "audio"
    input_transcription: InputTranscription | None = field(default_factory=InputTranscription)
    noise_reduction: Literal["near_field", "far_field"] | None = None
    turn_detection: TurnDetection | None = field(default_factory=ServerVAD)
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None

    @property
    def server_turns(self) -> bool:
        """Whether the server detects turns (else our VAD does and we commit and respond)."""
        return self.turn_detection is not None

    @property
    def server_creates_responses(self) -> bool:
        return self.turn_detection is not None and self.turn_detection.create_response

    def update(self, changes: dict[str, Any]) -> set[str]:
        """Apply ``changes`` (field names; dicts accepted for the nested settings); returns what changed.

        All or nothing: every change is checked first (:meth:`checked`), so an invalid one raises
        ``ValueError`` and leaves the settings as they were; a typo from a client is answered, not ignored.
        """
        changed: set[str] = set()
        for key, value in self.checked(changes).items():
            if getattr(self, key) != value:
                setattr(self, key, value)
                changed.add(key)
        return changed

    def checked(self, changes: dict[str, Any]) -> dict[str, Any]:
        """``changes`` validated and normalised (field name -> value), without applying them.

        Accepts the session's own spellings too (``output_modalities``, ``transcription``). Raises
        ``ValueError`` naming every unknown key, or the first invalid value.
        """
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known - set(_ALIASES)
        if unknown:
            raise ValueError(f"unknown realtime settings: {', '.join(sorted(unknown))}")
        result: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "output_modalities" and isinstance(value, list | tuple) and len(value) == 1:
                value = value[0]
            key = _ALIASES.get(key, key)
            result[key] = _checked_value(key, value)
        return result

    def session_param(self, *, instructions: str | None, tools: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``session`` of a ``session.update`` (model excluded: it is fixed per connection)."""
        audio_input: dict[str, Any] = {
            "format": dict(PCM_FORMAT),
            "transcription": self.input_transcription.to_param() if self.input_transcription else None,
            "noise_reduction": {"type": self.noise_reduction} if self.noise_reduction else None,
            "turn_detection": self.turn_detection.to_param() if self.turn_detection else None,
        }
        audio_output: dict[str, Any] = {"format": dict(PCM_FORMAT), "voice": self.voice}
        if self.speed is not None:
            audio_output["speed"] = self.speed
        session: dict[str, Any] = {
            "type": "realtime",
            "output_modalities": [self.modality],
            "audio": {"input": audio_input, "output": audio_output},
            "tools": tools,
            "tool_choice": self.tool_choice if self.tool_choice is not None else "auto",
            "max_output_tokens": self.max_output_tokens if self.max_output_tokens is not None else "inf",
        }
        if instructions is not None:
            session["instructions"] = instructions
        return session


_ALIASES = {"output_modalities": "modality", "transcription": "input_transcription"}
_CHOICES: dict[str, tuple[Any, ...]] = {
    "modality": ("audio", "text"),
    "noise_reduction": ("near_field", "far_field", None),
}


def _checked_value(key: str, value: Any) -> Any:
    """One setting's value, validated and in the field's type (``ValueError`` if it cannot be)."""
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            choices = " or ".join(repr(c) for c in _CHOICES[key])
            raise ValueError(f"{key} must be {choices}, not {value!r}")
        return value
    if key == "turn_detection":
        return _turn_detection(value)
    if key == "input_transcription":
        if value is None or isinstance(value, InputTranscription):
            return value
        if isinstance(value, dict):
            try:
                return InputTranscription(**value)
            except TypeError as exc:
                raise ValueError(f"input_transcription: {exc}") from None
        raise ValueError(f"input_transcription must be a dict or None, not {value!r}")
    if key in ("model", "voice"):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{key} must be a non-empty string, not {value!r}")
        return value
    if key == "instructions":
        if value is not None and not isinstance(value, str):
            raise ValueError(f"instructions must be a string or None, not {value!r}")
        return value
    if key in ("speed", "temperature"):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{key} must be a number or None, not {value!r}")
        return value
    if key == "max_output_tokens":
        if value in (None, "inf"):
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a JSON number from a client
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"max_output_tokens must be a positive integer or None, not {value!r}")
        return value
    if key == "tool_choice":
        if value is not None and not isinstance(value, str | dict):
            raise ValueError(f"tool_choice must be a string, a dict or None, not {value!r}")
        return value
    return value


def _turn_detection(value: Any) -> TurnDetection | None:
    if value is None or value is False or value == "none":
        return None
    if isinstance(value, ServerVAD | SemanticVAD):
        return value
    if value == "server_vad":
        return ServerVAD()
    if value == "semantic_vad":
        return SemanticVAD()
    if isinstance(value, dict):
        options = {k: v for k, v in value.items() if k != "type"}
        kinds: dict[Any, type[ServerVAD] | type[SemanticVAD]] = {
            "semantic_vad": SemanticVAD,
            "server_vad": ServerVAD,
        }
        kind = kinds.get(value.get("type", "server_vad"))
        if kind is not None:
            try:
                return kind(**options)
            except TypeError as exc:
                raise ValueError(f"turn_detection: {exc}") from None
    raise ValueError(f"turn_detection must be server_vad, semantic_vad or None, not {value!r}")


def tools_param(tools: Any) -> list[dict[str, Any]]:
    """The context's tools (``ToolsSchema``) as Realtime function tools (flat, not chat's nested shape)."""
    result: list[dict[str, Any]] = []
    if tools is None:
        return result
    for tool in tools.to_openai() if hasattr(tools, "to_openai") else tools:
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            continue
        entry: dict[str, Any] = {"type": "function", "name": function["name"]}
        if function.get("description"):
            entry["description"] = function["description"]
        entry["parameters"] = function.get("parameters") or {"type": "object", "properties": {}}
        result.append(entry)
    return result
