"""DemoAgentLLM: a small rule-based stand-in for an LLM, so the offline bot can hold a conversation.

It is not a language model and says so. It knows a few intents: a greeting, help, the time and the date,
and otherwise repeats what it heard ("You said: ..."). The time and the date go through a real function
call: it registers ``get_current_time``, adds the tool to the context if it is missing, answers "what time
is it" with a tool call, and when the context comes back with the tool's result it answers from that
result. So the whole function-calling path (frames, RTVI messages, context) runs without any LLM.

Its answers tell the user how to switch to a real LLM: set ``OPENAI_API_KEY``, or ``OPENAI_BASE_URL``
for a local OpenAI-compatible server (Ollama, llama.cpp).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any

from ...context import FunctionSchema
from ..functions import FunctionCallParams
from ..llm import LLMOutput, LLMService, LLMToolCall

TIME_FUNCTION = "get_current_time"

TIME_TOOL = FunctionSchema(
    name=TIME_FUNCTION,
    description="The current local time and date.",
    properties={
        "what": {"type": "string", "enum": ["time", "date"], "description": "What the user asked for."}
    },
    required=["what"],
)


def time_result(now: datetime) -> dict[str, str]:
    """What ``get_current_time`` returns: the time, the date and the time zone of ``now``."""
    return {
        "time": now.strftime("%H:%M"),
        "date": f"{now.strftime('%A')}, {now.day} {now.strftime('%B %Y')}",
        "timezone": now.tzname() or "local time",
    }


async def current_time(params: FunctionCallParams) -> None:
    """A ``get_current_time`` handler on the machine's clock, for any LLM (the bots register it)."""
    await params.result_callback(time_result(datetime.now(UTC).astimezone()))


CONFIGURE_HINT = (
    "To talk to a real language model, set OPENAI_API_KEY, or set OPENAI_BASE_URL to a local server "
    "such as Ollama or llama.cpp."
)
GREETING = (
    "Hello! I'm the voxloop demo agent, a simple rule-based responder, not a real language model. "
    "Ask me the time or the date, or say help. " + CONFIGURE_HINT
)
HELP = (
    "I'm the offline demo agent. I can tell you the time or the date, and otherwise I repeat what I "
    "heard, so you can check that speech recognition and speech work. " + CONFIGURE_HINT
)

_TIME = re.compile(r"\bwhat(?:'s| is)? the time\b|\bwhat time\b|\btime is it\b|\bcurrent time\b|\bthe time\b")
_DATE = re.compile(r"\bwhat(?:'s| is)? the date\b|\bwhat day\b|\btoday'?s date\b|\bdate today\b|\bthe date\b")
_GREETING = re.compile(r"^\W*(hi|hello|hey|hiya|good (morning|afternoon|evening))\b")
_HELP = re.compile(r"\bhelp\b|\bwhat can you do\b|\bwho are you\b")
_WORDS = re.compile(r"\S+\s*")


class DemoAgentLLM(LLMService):
    """The offline demo agent (see the module docstring). Deterministic; streams word-sized deltas.

    Args:
        now: where the time comes from (default: the machine's local time); tests pass a fixed one.
        **kwargs: :class:`~voxloop.services.llm.LLMService` options.
    """

    def __init__(self, *, now: Callable[[], datetime] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("model", "voxloop-demo-agent")
        super().__init__(**kwargs)
        self._now = now or (lambda: datetime.now(UTC).astimezone())
        self._calls = 0
        self.register_function(TIME_FUNCTION, self._get_current_time)

    async def _get_current_time(self, params: FunctionCallParams) -> None:
        await params.result_callback(time_result(self._now()))

    async def generate(self, context: Any) -> AsyncGenerator[LLMOutput, None]:
        if TIME_FUNCTION not in context.tools.names():
            context.set_tools([*context.tools.standard_tools, TIME_TOOL])
        messages: list[dict[str, Any]] = context.messages
        last = messages[-1] if messages else None
        if last is not None and last.get("role") == "tool":
            answer = self._answer_tool_result(messages, last)
        else:
            heard = _text(last.get("content")) if last and last.get("role") == "user" else ""
            wanted = _wanted(heard)
            if wanted is not None:
                self._calls += 1
                yield LLMToolCall(f"call_demo_{self._calls}", TIME_FUNCTION, json.dumps({"what": wanted}))
                return
            answer = _reply(heard)
        for word in _WORDS.findall(answer):
            yield word
            await asyncio.sleep(0)  # let the rest of the session run between "tokens"

    def _answer_tool_result(self, messages: list[dict[str, Any]], tool_message: dict[str, Any]) -> str:
        call = _find_call(messages, tool_message.get("tool_call_id"))
        if call is None or call["function"]["name"] != TIME_FUNCTION:
            return "I got a function result I don't know what to do with. " + CONFIGURE_HINT
        try:
            result = json.loads(_text(tool_message.get("content")))
        except (json.JSONDecodeError, TypeError):
            result = None
        if not isinstance(result, dict) or "time" not in result:
            return "Sorry, I couldn't get the time just now."
        try:
            wanted = json.loads(call["function"].get("arguments") or "{}").get("what", "time")
        except (json.JSONDecodeError, AttributeError):
            wanted = "time"
        if wanted == "date":
            return f"Today is {result.get('date')}."
        return f"It's {result['time']} ({result.get('timezone', 'local time')})."


def _text(content: Any) -> str:
    """The text of a message's content (a string, or a list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict)).strip()
    return ""


def _wanted(heard: str) -> str | None:
    said = heard.lower()
    if _DATE.search(said):
        return "date"
    if _TIME.search(said):
        return "time"
    return None


def _reply(heard: str) -> str:
    said = heard.strip()
    lowered = said.lower()
    if not said:
        return GREETING
    if _HELP.search(lowered):
        return HELP
    if _GREETING.search(lowered):
        return GREETING
    said = said.rstrip(".!? ")
    return f"You said: {said}. I'm the demo agent, not a real language model. " + CONFIGURE_HINT


def _find_call(messages: list[dict[str, Any]], call_id: Any) -> dict[str, Any] | None:
    for message in reversed(messages):
        for call in message.get("tool_calls") or ():
            if call.get("id") == call_id:
                return dict(call)
    return None
