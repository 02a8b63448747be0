"""Checking events against the `openai` SDK's own Realtime types, in both directions.

Client events are validated with a pydantic ``TypeAdapter`` over the members of
``openai.types.realtime.RealtimeClientEvent`` (discriminated on ``type``, so an error names the one event
model that failed rather than all eleven). The SDK models accept unknown fields (``extra="allow"``), while
the real API rejects them ("Unknown parameter"), so after validation the parsed tree is walked and any
extra field is reported too. Problems are turned into the API's own error shape (``invalid_request_error``
with a ``code`` and a ``param`` path).

Server events go through the same check against ``RealtimeServerEvent`` before the emulator sends them;
a failure there is a bug in the emulator and raises :class:`EmulatorBug`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args

from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import BaseModel, Field, TypeAdapter, ValidationError


class EmulatorBug(AssertionError):
    """The emulator was about to send an event that its own schema (the SDK types) rejects."""


def _union_members(alias: Any) -> tuple[Any, ...]:
    """The model classes of an ``Annotated[Union[...], PropertyInfo]`` alias from the SDK."""
    inner = get_args(alias)[0]
    return get_args(inner)


def _discriminated(alias: Any) -> TypeAdapter[Any]:
    members = _union_members(alias)
    union: Any = Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007
    return TypeAdapter(union)


_CLIENT_ADAPTER = _discriminated(RealtimeClientEvent)
_SERVER_ADAPTER = _discriminated(RealtimeServerEvent)

CLIENT_EVENT_TYPES = frozenset(
    get_args(member.model_fields["type"].annotation)[0] for member in _union_members(RealtimeClientEvent)
)

# Fields the real API sends although the SDK's server-side models do not declare them: the session in
# session.created / session.updated is typed as the *request* model, which lacks the response's id,
# object and expiry.
_ALLOWED_SERVER_EXTRAS = {"RealtimeSessionCreateRequest": frozenset({"id", "object", "expires_at"})}


@dataclass(frozen=True)
class Problem:
    """Why a client event was refused, in the shape of the API's ``error`` object."""

    message: str
    code: str
    param: str | None = None
    event_id: str | None = None


def _extras(value: Any, path: str) -> list[str]:
    """Paths of fields present in the data but not declared by the (SDK) model that parsed it."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        allowed = _ALLOWED_SERVER_EXTRAS.get(type(value).__name__, frozenset())
        for key in value.model_extra or {}:
            if key not in allowed:
                found.append(f"{path}.{key}" if path else key)
        for name in type(value).model_fields:
            found.extend(_extras(getattr(value, name), f"{path}.{name}" if path else name))
    elif isinstance(value, list):
        for index, element in enumerate(value):
            found.extend(_extras(element, f"{path}[{index}]"))
    return found


def _loc_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the API writes a param path (``session.audio.input``), minus the
    union member names pydantic inserts (``session.realtime.audio`` -> ``session.audio``)."""
    parts: list[str] = []
    for element in loc[1:]:  # loc[0] is the discriminator tag (the event type)
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif (
            "[" in element
            or element in {"realtime", "transcription"}
            or element[:1].isupper()
            or element.startswith(("function-", "literal[", "str", "int", "none"))
        ):
            continue
        else:
            parts.append(("." if parts else "") + element)
    return "".join(parts)


def parse_client_event(raw: str | bytes) -> tuple[BaseModel | None, dict[str, Any] | None, Problem | None]:
    """``(event, data, problem)``: the parsed SDK model and raw dict, or the problem that refuses it."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, None, Problem(f"The server failed to parse the event as JSON: {exc}.", "invalid_json")
    if not isinstance(data, dict):
        return (
            None,
            None,
            Problem("Expected an event object, got a JSON " + type(data).__name__ + ".", "invalid_json"),
        )
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    event_type = data.get("type")
    if not isinstance(event_type, str):
        return (
            None,
            data,
            Problem("Missing required parameter: 'type'.", "missing_required_parameter", "type", event_id),
        )
    if event_type not in CLIENT_EVENT_TYPES:
        supported = ", ".join(f"'{name}'" for name in sorted(CLIENT_EVENT_TYPES))
        message = f"Invalid value: '{event_type}'. Supported values are: {supported}."
        return None, data, Problem(message, "invalid_value", "type", event_id)
    try:
        event = _CLIENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        return None, data, _problem_from(exc, event_id)
    extras = _extras(event, "")
    if extras:
        return (
            None,
            data,
            Problem(f"Unknown parameter: '{extras[0]}'.", "unknown_parameter", extras[0], event_id),
        )
    return event, data, None


def _most_relevant(errors: list[Any]) -> Any:
    """Pydantic reports a failed union once per member; skip members whose ``type``/``role`` tag did not
    even match (the data was clearly meant for another member), so the error names the real mistake."""

    def mismatched_tag(error: Any) -> bool:
        loc = error["loc"]
        return bool(
            error["type"] == "literal_error"
            and len(loc) >= 2
            and loc[-1] in {"type", "role"}
            and isinstance(loc[-2], str)
            and loc[-2][:1].isupper()
        )

    def member(error: Any) -> tuple[Any, ...]:
        return tuple(part for part in error["loc"] if isinstance(part, str) and part[:1].isupper())

    refused = {member(error) for error in errors if mismatched_tag(error) and member(error)}
    for error in errors:
        if member(error) not in refused:
            return error
    return errors[0]


def _problem_from(exc: ValidationError, event_id: str | None) -> Problem:
    error = _most_relevant(exc.errors())
    param = _loc_path(error["loc"]) or None
    kind = error["type"]
    if kind == "missing":
        return Problem(
            f"Missing required parameter: '{param}'.", "missing_required_parameter", param, event_id
        )
    if kind.startswith(("literal", "enum", "union_tag")):
        return Problem(f"Invalid value for '{param}': {error['msg']}.", "invalid_value", param, event_id)
    return Problem(f"Invalid type for '{param}': {error['msg']}.", "invalid_type", param, event_id)


def check_server_event(data: dict[str, Any]) -> None:
    """Raise :class:`EmulatorBug` unless ``data`` is a valid ``RealtimeServerEvent`` with no stray fields."""
    try:
        event = _SERVER_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise EmulatorBug(f"server event {data.get('type')!r} does not match the SDK schema: {exc}") from exc
    extras = _extras(event, "")
    if extras:
        raise EmulatorBug(f"server event {data.get('type')!r} has fields the SDK schema lacks: {extras}")
