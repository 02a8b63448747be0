"""Tool (function) descriptions for the LLM, in one neutral shape that turns into OpenAI's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FunctionSchema:
    """One function the LLM may call: its name, what it does, and JSON-schema ``properties``."""

    name: str
    description: str
    properties: dict[str, Any] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)

    def to_openai(self) -> dict[str, Any]:
        """The tool as OpenAI's chat API takes it: ``{"type": "function", "function": {...}}``."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {"type": "object", "properties": self.properties, "required": self.required},
            },
        }

    @classmethod
    def from_openai(cls, tool: Mapping[str, Any]) -> FunctionSchema:
        """Read an OpenAI tool dict (chat shape ``{"type", "function": {...}}`` or the flat shape)."""
        function = tool.get("function", tool)
        parameters = function.get("parameters") or {}
        return cls(
            name=function["name"],
            description=function.get("description", ""),
            properties=dict(parameters.get("properties") or {}),
            required=list(parameters.get("required") or []),
        )


@dataclass
class ToolsSchema:
    """The set of functions offered to the LLM."""

    standard_tools: list[FunctionSchema] = field(default_factory=list)

    @classmethod
    def of(cls, tools: ToolsSchema | Iterable[FunctionSchema | Mapping[str, Any]] | None) -> ToolsSchema:
        """Normalise what users pass: a ToolsSchema, FunctionSchemas, or OpenAI tool dicts."""
        if tools is None:
            return cls()
        if isinstance(tools, ToolsSchema):
            return tools
        return cls(
            [tool if isinstance(tool, FunctionSchema) else FunctionSchema.from_openai(tool) for tool in tools]
        )

    def names(self) -> list[str]:
        return [tool.name for tool in self.standard_tools]

    def to_openai(self) -> list[dict[str, Any]]:
        return [tool.to_openai() for tool in self.standard_tools]

    def __bool__(self) -> bool:
        return bool(self.standard_tools)
