"""The RTVI 0.x service/option/action API (deprecated in RTVI 1.0, kept for older clients).

Older clients configure a bot through *services* with typed *options* and trigger *actions*.
Registering either warns with a DeprecationWarning; the clients that use them keep working.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..frames import TTSSpeakFrame
from .messages import ActionData, ServiceConfig
from .protocol import RequestError

OptionType = Literal["bool", "number", "string", "array", "object"]

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}


class LegacyAPIError(RequestError):
    """A legacy request that cannot be done; the message goes to the client."""


class RTVIServiceOptionConfig(dict[str, Any]):
    """A value for an option, as its handler gets it: ``option.name`` and ``option.value`` (also
    readable as the mapping ``{"name": ..., "value": ...}``)."""

    @property
    def name(self) -> str:
        return str(self["name"])

    @property
    def value(self) -> Any:
        return self.get("value")


@dataclass
class RTVIServiceOption:
    """An option of a service; ``handler(processor, service, option)`` applies a new value
    (``option`` is an :class:`RTVIServiceOptionConfig`)."""

    name: str
    type: OptionType
    handler: Callable[[Any, str, dict[str, Any]], Awaitable[None] | None]


@dataclass
class RTVIService:
    name: str
    options: list[RTVIServiceOption]


@dataclass
class RTVIActionArgument:
    name: str
    type: OptionType


@dataclass
class RTVIAction:
    """An action ``service:action``; ``handler(processor, service, arguments)`` returns the result."""

    service: str
    action: str
    result: OptionType
    handler: Callable[[Any, str, dict[str, Any]], Any]
    arguments: list[RTVIActionArgument] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.service}:{self.action}"


def _matches(type_: str, value: Any) -> bool:
    if type_ == "number" and isinstance(value, bool):
        return False
    return isinstance(value, _PYTHON_TYPES[type_])


async def _call(handler: Callable[..., Any], *args: Any) -> Any:
    result = handler(*args)
    return await result if inspect.isawaitable(result) else result


class LegacyServices:
    """The registry and current configuration behind the 0.x messages."""

    def __init__(self, config: list[dict[str, Any]] | None = None) -> None:
        self._services: dict[str, RTVIService] = {}
        self._actions: dict[str, RTVIAction] = {}
        self._config = [ServiceConfig.model_validate(entry) for entry in config or []]
        self._initial_config_applied = False

    def register_service(self, service: RTVIService, *, warn: bool = True) -> None:
        if warn:
            warnings.warn(
                "RTVI services are the deprecated 0.x API; use client messages instead",
                DeprecationWarning,
                stacklevel=3,
            )
        self._services[service.name] = service

    def register_action(self, action: RTVIAction, *, warn: bool = True) -> None:
        if warn:
            warnings.warn(
                "RTVI actions are the deprecated 0.x API; use client messages instead",
                DeprecationWarning,
                stacklevel=3,
            )
        self._actions[action.id] = action

    def has_action(self, action_id: str) -> bool:
        return action_id in self._actions

    def describe_config(self) -> list[dict[str, Any]]:
        return [
            {"name": s.name, "options": [{"name": o.name, "type": o.type} for o in s.options]}
            for s in self._services.values()
        ]

    def describe_actions(self) -> list[dict[str, Any]]:
        return [
            {
                "service": a.service,
                "action": a.action,
                "arguments": [{"name": arg.name, "type": arg.type} for arg in a.arguments],
                "result": a.result,
            }
            for a in self._actions.values()
        ]

    def current_config(self) -> list[dict[str, Any]]:
        return [entry.model_dump(mode="json") for entry in self._config]

    async def apply_initial_config(self, processor: Any) -> None:
        """The configuration given at construction, through the registered options' handlers (once,
        when the bot becomes ready; entries of services nobody registered are only reported)."""
        if self._initial_config_applied:
            return
        self._initial_config_applied = True
        for entry in self._config:
            service = self._services.get(entry.service)
            if service is None:
                continue
            for option in entry.options:
                spec = next((o for o in service.options if o.name == option.name), None)
                if spec is not None:
                    config = RTVIServiceOptionConfig(option.model_dump(mode="json"))
                    await _call(spec.handler, processor, entry.service, config)

    async def update_config(self, processor: Any, changes: list[ServiceConfig]) -> None:
        """Check every change first, then apply: a bad request changes nothing."""
        plan: list[tuple[RTVIServiceOption, ServiceConfig, RTVIServiceOptionConfig]] = []
        for change in changes:
            service = self._services.get(change.service)
            if service is None:
                raise LegacyAPIError(f"Service {change.service} not registered")
            for option in change.options:
                spec = next((o for o in service.options if o.name == option.name), None)
                if spec is None:
                    raise LegacyAPIError(f"Service {change.service} has no option {option.name}")
                if not _matches(spec.type, option.value):
                    raise LegacyAPIError(f"Option {change.service}.{option.name} must be of type {spec.type}")
                plan.append((spec, change, RTVIServiceOptionConfig(option.model_dump(mode="json"))))
        for spec, change, value in plan:
            await _call(spec.handler, processor, change.service, value)
            self._store(change.service, value)

    def _store(self, service: str, option: dict[str, Any]) -> None:
        entry = next((e for e in self._config if e.service == service), None)
        if entry is None:
            entry = ServiceConfig(service=service, options=[])
            self._config.append(entry)
        for existing in entry.options:
            if existing.name == option["name"]:
                existing.value = option.get("value")
                return
        entry.options.append(
            ServiceConfig.model_validate({"service": service, "options": [option]}).options[0]
        )

    async def run_action(self, processor: Any, request: ActionData) -> Any:
        arguments = {arg.name: arg.value for arg in request.arguments or []}
        return await self.run(processor, request.service, request.action, arguments)

    async def run(self, processor: Any, service: str, action_name: str, arguments: dict[str, Any]) -> Any:
        action = self._actions.get(f"{service}:{action_name}")
        if action is None:
            raise LegacyAPIError(f"Action {service}:{action_name} not registered")
        for spec in action.arguments:
            if spec.name in arguments and not _matches(spec.type, arguments[spec.name]):
                raise LegacyAPIError(f"Argument {spec.name} of {action.id} must be of type {spec.type}")
        return await _call(action.handler, processor, service, arguments)


async def _say(processor: Any, service: str, arguments: dict[str, Any]) -> bool:
    text = arguments.get("text")
    if not isinstance(text, str) or not text:
        raise LegacyAPIError("Action tts:say needs a non-empty text argument")
    processor._check_text_length("action tts:say", text)  # the RTVIProcessor's max_text_chars
    await processor.push_frame(TTSSpeakFrame(text=text))
    return True


#: The built-in ``tts:say`` action (speak the given text), offered when the pipeline has a TTS.
SAY_ACTION = RTVIAction("tts", "say", "bool", _say, [RTVIActionArgument("text", "string")])
