"""OpenAILLMService with the real `openai` SDK against the local OpenAI-compatible test server."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from voxloop.context import FunctionSchema, LLMContext
from voxloop.frames import (
    ErrorCategory,
    ErrorFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
    LLMTokenUsage,
    LLMUpdateSettingsFrame,
    LLMUsageMetricsData,
    MetricsFrame,
)
from voxloop.pipeline import PipelineParams
from voxloop.services import FunctionCallParams
from voxloop.services.openai import OpenAILLMService
from voxloop.testing import PipelineHarness
from voxloop.testing.openai_server import OpenAITestServer, check_chat_request

pytestmark = pytest.mark.usefixtures("no_leaked_tasks")

WEATHER = FunctionSchema(
    "get_weather", "The weather in a city.", {"city": {"type": "string"}}, required=["city"]
)


@pytest.fixture
async def server() -> AsyncIterator[OpenAITestServer]:
    async with OpenAITestServer() as server:
        yield server
        assert server.invalid_requests == []


def make_llm(server: OpenAITestServer, **kwargs: Any) -> OpenAILLMService:
    kwargs.setdefault("max_retries", 0)
    return OpenAILLMService(api_key="test-key", base_url=server.base_url, **kwargs)


def texts(frames: list[Any]) -> str:
    return "".join(f.text for f in frames if isinstance(f, LLMTextFrame))


def chat_bodies(server: OpenAITestServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path == "/v1/chat/completions"]


async def test_streams_text_in_deltas(server: OpenAITestServer) -> None:
    server.script["chat"] = [{"text": "Hello there, how are you?"}]
    llm = make_llm(server, temperature=0.3, max_tokens=100)
    context = LLMContext([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    deltas = [f.text for f in h.down if isinstance(f, LLMTextFrame)]
    assert deltas == ["Hello", " there,", " how", " are", " you?"]
    (body,) = chat_bodies(server)
    assert body["model"] == "gpt-4.1-mini" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == context.messages
    assert body["temperature"] == 0.3 and body["max_tokens"] == 100
    assert "tools" not in body
    assert server.script["chat_streams"] == ["completed"]


async def test_usage_becomes_metrics(server: OpenAITestServer) -> None:
    server.script["chat"] = [{"text": "Sure.", "usage": {"prompt_tokens": 21, "completion_tokens": 2}}]
    llm = make_llm(server)
    params = PipelineParams(enable_metrics=True, enable_usage_metrics=True)
    async with PipelineHarness(llm, params=params) as h:
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "ok?"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    usage = [
        d.value
        for f in h.down
        if isinstance(f, MetricsFrame)
        for d in f.data
        if isinstance(d, LLMUsageMetricsData)
    ]
    assert usage == [LLMTokenUsage(prompt_tokens=21, completion_tokens=2, total_tokens=23)]


async def test_server_without_usage_is_fine(server: OpenAITestServer) -> None:
    server.script["chat"] = [{"text": "No usage here.", "usage": False}]
    llm = make_llm(server)
    params = PipelineParams(enable_metrics=True, enable_usage_metrics=True)
    async with PipelineHarness(llm, params=params) as h:
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "ok?"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    assert texts(h.down) == "No usage here."
    assert not [f for f in h.up if isinstance(f, ErrorFrame)]


async def test_tool_call_runs_and_the_follow_up_request_is_valid(server: OpenAITestServer) -> None:
    server.script["chat"] = [
        {"tool_calls": [{"id": "call_w1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"text": "It is sunny in Paris."},
    ]
    llm = make_llm(server)

    async def weather(params: FunctionCallParams) -> None:
        await params.result_callback({"city": params.arguments["city"], "forecast": "sunny"})

    llm.register_function("get_weather", weather)
    context = LLMContext(
        [{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER], tool_choice="auto"
    )
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(context))
        result = await h.down_recorder.wait_for(FunctionCallResultFrame)
        # What the assistant aggregator does with the frames, then it sends the context back up.
        progress = [f for f in h.down if isinstance(f, FunctionCallInProgressFrame)]
        context.add_message(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": p.tool_call_id,
                        "type": "function",
                        "function": {"name": p.function_name, "arguments": json.dumps(p.arguments)},
                    }
                    for p in progress
                ],
            }
        )
        context.add_message(
            {"role": "tool", "tool_call_id": result.tool_call_id, "content": json.dumps(result.result)}
        )
        await h.push_up(LLMContextFrame(context))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
    assert [(p.tool_call_id, p.function_name, p.arguments) for p in progress] == [
        ("call_w1", "get_weather", {"city": "Paris"})
    ]
    assert result.result == {"city": "Paris", "forecast": "sunny"}
    assert texts(h.down) == "It is sunny in Paris."
    first, second = chat_bodies(server)
    assert first["tools"] == [WEATHER.to_openai()] and first["tool_choice"] == "auto"
    assert second["messages"][-1]["role"] == "tool"


async def test_parallel_tool_calls_are_assembled_by_index(server: OpenAITestServer) -> None:
    server.script["chat"] = [
        {
            "text": "Checking both.",
            "tool_calls": [
                {"id": "a", "name": "get_weather", "arguments": {"city": "Paris"}},
                {"id": "b", "name": "get_weather", "arguments": {"city": "Oslo"}},
            ],
        }
    ]
    llm = make_llm(server)
    seen: list[tuple[str, str]] = []

    async def weather(params: FunctionCallParams) -> None:
        seen.append((params.tool_call_id, params.arguments["city"]))
        await params.result_callback("ok")

    llm.register_function("get_weather", weather)
    context = LLMContext([{"role": "user", "content": "Paris and Oslo?"}], tools=[WEATHER])
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(context))
        await h.down_recorder.wait_for(FunctionCallResultFrame, count=2)
    assert sorted(seen) == [("a", "Paris"), ("b", "Oslo")]
    assert texts(h.down) == "Checking both."


async def test_http_error_is_reported_and_the_session_keeps_working(server: OpenAITestServer) -> None:
    server.script["chat"] = [{"status": 500, "message": "the model is overloaded"}, {"text": "Back again."}]
    llm = make_llm(server)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "one"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "two"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
    (error,) = [f for f in h.up if isinstance(f, ErrorFrame)]
    assert "500" in error.error and "the model is overloaded" in error.error
    assert error.category is ErrorCategory.SERVER and not error.fatal
    assert texts(h.down) == "Back again."


async def test_bad_key_gives_one_clear_error_naming_the_variable(server: OpenAITestServer) -> None:
    llm = OpenAILLMService(api_key="wrong", base_url=server.base_url, max_retries=0)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "hi"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    errors = [f for f in h.up if isinstance(f, ErrorFrame)]
    assert len(errors) == 1
    assert "OPENAI_API_KEY" in errors[0].error and "401" in errors[0].error
    assert errors[0].category is ErrorCategory.AUTHENTICATION


async def test_timeout_before_first_token(server: OpenAITestServer) -> None:
    server.script["chat"] = [{"text": "too late", "delay": 5.0}, {"text": "on time"}]
    llm = make_llm(server, timeout_secs=0.3)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "hi"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "again"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
    (error,) = [f for f in h.up if isinstance(f, ErrorFrame)]
    assert "did not answer within 0.3 s" in error.error
    assert error.category is ErrorCategory.CONNECTIVITY
    assert texts(h.down) == "on time"


async def test_connection_dropped_mid_stream(server: OpenAITestServer) -> None:
    server.script["chat"] = [{"text": "one two three four five", "drop_after": 3}]
    llm = make_llm(server)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "hi"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    (error,) = [f for f in h.up if isinstance(f, ErrorFrame)]
    assert server.base_url in error.error
    assert texts(h.down) == "one two"  # what arrived before the drop
    assert server.script["chat_streams"] == ["dropped"]


async def test_connection_refused_names_the_base_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    base_url = f"http://127.0.0.1:{port}/v1"
    llm = OpenAILLMService(base_url=base_url, max_retries=0)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "hi"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    (error,) = [f for f in h.up if isinstance(f, ErrorFrame)]
    assert f"cannot connect to the LLM server at {base_url}" in error.error


async def test_interruption_cancels_the_stream_and_closes_it(server: OpenAITestServer) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    server.script["chat"] = [{"text": words, "delay_between": 0.05}, {"text": "Next answer."}]
    llm = make_llm(server)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "talk"}])))
        await h.down_recorder.wait_for(LLMTextFrame, count=2)
        await h.push(InterruptionFrame())
        await h.down_recorder.wait_for(InterruptionFrame)
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "next"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    streamed = [f.text for f in h.down if isinstance(f, LLMTextFrame)]
    assert streamed[-2:] == ["Next", " answer."]
    assert len(streamed) < 40  # the long answer was cut short
    assert server.script["chat_streams"][0] == "disconnected"
    assert [f for f in h.up if isinstance(f, ErrorFrame)] == []


async def test_settings_update_changes_the_request(server: OpenAITestServer) -> None:
    server.script["chat"] = [{"text": "a"}, {"text": "b"}]
    llm = make_llm(server)
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "hi"}])))
        await h.push(LLMUpdateSettingsFrame({"model": "gpt-4.1", "temperature": 0.9, "seed": 7}))
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "hi"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame, count=2)
    first, second = chat_bodies(server)
    assert first["model"] == "gpt-4.1-mini" and "temperature" not in first
    assert (second["model"], second["temperature"], second["seed"]) == ("gpt-4.1", 0.9, 7)


def test_missing_key_and_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY.*OPENAI_BASE_URL"):
        OpenAILLMService()


async def test_environment_is_read_and_a_local_server_needs_no_key(
    server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    server.api_key = None  # like Ollama: any key, or none
    server.script["chat"] = [{"text": "local"}]
    llm = OpenAILLMService(model="llama3.2", max_retries=0)
    assert llm.base_url == server.base_url
    async with PipelineHarness(llm) as h:
        await h.push(LLMContextFrame(LLMContext([{"role": "user", "content": "hi"}])))
        await h.down_recorder.wait_for(LLMFullResponseEndFrame)
    assert texts(h.down) == "local"
    assert server.requests[0].headers["authorization"] == "Bearer not-needed"


# -- the test server's own checks -----------------------------------------------------------------


async def test_server_rejects_an_unanswered_tool_call_and_records_it(server: OpenAITestServer) -> None:
    client = openai.AsyncOpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)
    messages: list[Any] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "user", "content": "hello?"},
    ]
    async with client:
        with pytest.raises(openai.BadRequestError, match="must be followed by tool messages"):
            await client.chat.completions.create(model="gpt-4.1-mini", messages=messages)
        # A good request, not streamed, answers a ChatCompletion; the models list answers too.
        server.script["chat"] = [{"text": "Fine.", "tool_calls": [{"name": "f", "arguments": {"x": 1}}]}]
        completion = await client.chat.completions.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}]
        )
        models = [m.id async for m in client.models.list()]
    assert completion.choices[0].message.content == "Fine."
    tool_call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(tool_call.function.arguments) == {"x": 1}  # type: ignore[union-attr]
    assert "gpt-4.1-mini" in models
    (bad,) = server.invalid_requests
    assert "must be followed by tool messages" in (bad.problem or "")
    server.requests.remove(bad)  # checked: the fixture asserts the rest were valid


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "invalid request"),
        (
            {"model": "m", "messages": [{"role": "tool", "content": "x", "tool_call_id": "nope"}]},
            "must answer",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "bogus": 1},
            "unknown parameters: bogus",
        ),
        ({"model": "m", "messages": []}, "'messages' is empty"),
        ({"messages": [{"role": "user", "content": "x"}]}, "invalid request"),
    ],
)
def test_request_checks(body: dict[str, Any], problem: str) -> None:
    found = check_chat_request(body)
    assert found is not None and problem in found


def test_valid_conversation_with_tools_passes_the_checks() -> None:
    body = {
        "model": "m",
        "stream": True,
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "IN_PROGRESS"},
            {"role": "assistant", "content": "done"},
        ],
        "tools": [WEATHER.to_openai()],
    }
    assert check_chat_request(body) is None
