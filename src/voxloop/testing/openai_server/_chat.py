"""``POST /v1/chat/completions`` and ``GET /v1/models`` of the OpenAI test server.

Every request body is validated against the SDK's own request types (``CompletionCreateParamsStreaming``
/ ``NonStreaming``) and checked the way OpenAI checks a conversation (a tool message must answer a tool
call of the assistant message before it; every tool call must be answered before the conversation goes
on). An invalid request gets a 400 in OpenAI's error shape and its problem is recorded.

Answers come from ``server.script["chat"]``, a list consumed one item per request (when it is empty the
answer is ``"Hello from the test server."``). Each item is a dict:

- ``text``: the reply; streamed in word-sized deltas, or as ``deltas`` (a list of strings) when given;
- ``tool_calls``: ``[{"name": ..., "arguments": dict | str, "id": optional}]``; streamed the way OpenAI
  does (id and name first, arguments in several pieces, by ``index``);
- ``usage``: ``{"prompt_tokens": n, "completion_tokens": m}`` (default: counted from words), sent as the
  last chunk when the request asks for it with ``stream_options.include_usage``, or ``False`` for none;
- faults: ``status`` (+ ``message``, ``code``): answer that HTTP error instead; ``delay``: seconds to wait
  before the first chunk; ``delay_between``: seconds between chunks; ``drop_after``: close the connection
  after that many chunks, without finishing the response.

``server.script["chat_streams"]`` (created on first use) lists how each streamed answer ended:
``"completed"``, ``"dropped"`` (the fault above) or ``"disconnected"`` (the client went away first).
``server.script["models"]``: the ids ``GET /v1/models`` lists.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from openai.types import CompletionUsage, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion_chunk import (
    Choice as ChunkChoice,
)
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
)
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ._server import RecordedRequest, error_response

if TYPE_CHECKING:
    from ._server import OpenAITestServer

DEFAULT_TEXT = "Hello from the test server."
DEFAULT_MODELS = ["gpt-4.1-mini", "gpt-4.1", "gpt-4o-mini"]

_STREAMING = TypeAdapter(CompletionCreateParamsStreaming)
_NON_STREAMING = TypeAdapter(CompletionCreateParamsNonStreaming)
_KNOWN_KEYS = set(CompletionCreateParamsStreaming.__required_keys__) | set(
    CompletionCreateParamsStreaming.__optional_keys__
)


class _DropConnection(Exception):
    """Raised inside a streamed body to make the server cut the connection."""


def routes(server: OpenAITestServer) -> list[BaseRoute]:
    async def chat(request: Request) -> Response:
        return await _chat(server, request)

    async def models(request: Request) -> Response:
        refused = server.check_auth(request)
        if refused is not None:
            return refused
        ids = server.script.get("models", DEFAULT_MODELS)
        data = [Model(id=i, created=0, object="model", owned_by="voxloop-test").model_dump() for i in ids]
        return JSONResponse({"object": "list", "data": data})

    return [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]


# -- checking the request -------------------------------------------------------------------------


def _materialise(value: Any) -> Any:
    """Run pydantic's lazy validation of ``Iterable`` fields, so every nested item is checked."""
    if isinstance(value, Iterator):  # pydantic's ValidatorIterator
        return [_materialise(item) for item in value]
    if isinstance(value, dict):
        return {key: _materialise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_materialise(item) for item in value]
    return value


def check_chat_request(body: Any) -> str | None:
    """What is wrong with a chat-completions body, or None when OpenAI would accept it."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    unknown = sorted(set(body) - _KNOWN_KEYS)
    if unknown:
        return f"unknown parameters: {', '.join(unknown)}"
    adapter = _STREAMING if body.get("stream") else _NON_STREAMING
    try:
        _materialise(adapter.validate_python(body))
    except ValidationError as exc:
        return f"invalid request: {exc}"
    return _check_conversation(body["messages"])


def _check_conversation(messages: list[dict[str, Any]]) -> str | None:
    if not messages:
        return "'messages' is empty"
    unanswered: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in unanswered:
                return (
                    f"messages[{index}]: a 'tool' message must answer a tool_call_id of the preceding "
                    f"assistant message ({call_id!r} is not one)"
                )
            unanswered.remove(call_id)
            continue
        if unanswered:
            return (
                f"messages[{index}]: an assistant message with 'tool_calls' must be followed by tool "
                f"messages answering each tool_call_id (not answered: {', '.join(unanswered)})"
            )
        if role == "assistant":
            ids = [call.get("id") for call in message.get("tool_calls") or ()]
            if len(set(ids)) != len(ids):
                return f"messages[{index}]: duplicate tool_call ids"
            unanswered = list(ids)
    if unanswered:
        return f"the last tool calls are not answered: {', '.join(unanswered)}"
    return None


# -- answering --------------------------------------------------------------------------------------


async def _chat(server: OpenAITestServer, request: Request) -> Response:
    raw = await request.body()
    try:
        body: Any = json.loads(raw)
    except json.JSONDecodeError:
        body = raw.decode(errors="replace")
    recorded = RecordedRequest(request.method, request.url.path, body, dict(request.headers))
    server.requests.append(recorded)
    refused = server.check_auth(request)
    if refused is not None:
        return refused
    problem = check_chat_request(body)
    if problem is not None:
        recorded.problem = problem
        return error_response(400, problem, "invalid_request")
    script: list[dict[str, Any]] = server.script.setdefault("chat", [])
    answer = script.pop(0) if script else {"text": DEFAULT_TEXT}
    if "status" in answer:
        status = int(answer["status"])
        kind = "server_error" if status >= 500 else "invalid_request_error"
        message = answer.get("message", f"scripted error {status}")
        return error_response(status, message, answer.get("code"), kind)
    model = body["model"]
    if not body.get("stream"):
        delay = float(answer.get("delay", 0))
        if delay:
            await asyncio.sleep(delay)
        return JSONResponse(_completion(model, answer, body).model_dump(mode="json", exclude_none=True))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    ends: list[str] = server.script.setdefault("chat_streams", [])
    return StreamingResponse(
        _stream(_chunks(model, answer, body, include_usage), answer, ends), media_type="text/event-stream"
    )


def _deltas(answer: dict[str, Any]) -> list[str]:
    if "deltas" in answer:
        return [str(delta) for delta in answer["deltas"]]
    text = answer.get("text")
    return re.findall(r"\s*\S+", text) if text else []


def _tool_calls(answer: dict[str, Any]) -> list[tuple[str, str, str]]:
    calls = []
    for index, call in enumerate(answer.get("tool_calls") or ()):
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append((call.get("id") or f"call_{index}_{call['name']}", call["name"], arguments))
    return calls


def _usage(answer: dict[str, Any], body: dict[str, Any]) -> CompletionUsage | None:
    usage = answer.get("usage")
    if usage is False:
        return None
    if isinstance(usage, dict):
        prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    else:
        prompt = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
        completion = len((answer.get("text") or "").split()) + 10 * len(answer.get("tool_calls") or ())
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _chunks(
    model: str, answer: dict[str, Any], body: dict[str, Any], include_usage: bool
) -> list[ChatCompletionChunk]:
    created, ident = int(time.time()), f"chatcmpl-test-{time.monotonic_ns()}"

    def chunk(delta: ChoiceDelta | None, finish: Any = None, usage: CompletionUsage | None = None) -> Any:
        choices = [] if delta is None else [ChunkChoice(index=0, delta=delta, finish_reason=finish)]
        return ChatCompletionChunk(
            id=ident,
            choices=choices,
            created=created,
            model=model,
            object="chat.completion.chunk",
            usage=usage,
        )

    chunks = [chunk(ChoiceDelta(role="assistant", content=""))]
    chunks += [chunk(ChoiceDelta(content=delta)) for delta in _deltas(answer)]
    calls = _tool_calls(answer)
    for index, (call_id, name, arguments) in enumerate(calls):
        head = ChoiceDeltaToolCallFunction(name=name, arguments="")
        chunks.append(
            chunk(
                ChoiceDelta(
                    tool_calls=[ChoiceDeltaToolCall(index=index, id=call_id, type="function", function=head)]
                )
            )
        )
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            if piece:
                part = ChoiceDeltaToolCall(index=index, function=ChoiceDeltaToolCallFunction(arguments=piece))
                chunks.append(chunk(ChoiceDelta(tool_calls=[part])))
    finish = answer.get("finish_reason") or ("tool_calls" if calls else "stop")
    chunks.append(chunk(ChoiceDelta(), finish))
    if include_usage:
        usage = _usage(answer, body)
        if usage is not None:
            chunks.append(chunk(None, usage=usage))
    return chunks


async def _stream(
    chunks: list[ChatCompletionChunk], answer: dict[str, Any], ends: list[str]
) -> AsyncIterator[str]:
    delay = float(answer.get("delay", 0))
    between = float(answer.get("delay_between", 0))
    drop_after = answer.get("drop_after")
    outcome = "disconnected"
    try:
        if delay:
            await asyncio.sleep(delay)
        for sent, item in enumerate(chunks):
            if drop_after is not None and sent >= int(drop_after):
                outcome = "dropped"
                raise _DropConnection("scripted: connection dropped mid-stream")
            if sent and between:
                await asyncio.sleep(between)
            yield f"data: {item.model_dump_json(exclude_none=True)}\n\n"
        yield "data: [DONE]\n\n"
        outcome = "completed"
    finally:
        ends.append(outcome)


def _completion(model: str, answer: dict[str, Any], body: dict[str, Any]) -> ChatCompletion:
    calls = _tool_calls(answer)
    tool_calls: list[Any] = [
        ChatCompletionMessageFunctionToolCall(
            id=call_id, type="function", function=Function(name=name, arguments=arguments)
        )
        for call_id, name, arguments in calls
    ]
    text = "".join(_deltas(answer)) or None
    message = ChatCompletionMessage(role="assistant", content=text, tool_calls=tool_calls or None)
    finish = answer.get("finish_reason") or ("tool_calls" if calls else "stop")
    choice: Any = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    return ChatCompletion(
        id=f"chatcmpl-test-{time.monotonic_ns()}",
        choices=[choice],
        created=int(time.time()),
        model=model,
        object="chat.completion",
        usage=_usage(answer, body),
    )
