"""OpenAILLMService: chat completions, streamed, with tools, through the official ``openai`` SDK.

Works with OpenAI and with any OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio...):
give ``base_url`` (or set ``OPENAI_BASE_URL``); a local server needs no key.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI

from ...frames import ErrorCategory, LLMTokenUsage
from ..llm import LLMOutput, LLMService, LLMServiceError, LLMToolCall
from ._client import make_client

logger = logging.getLogger("voxloop.services.openai")

try:  # the SDK's HTTP library: httpx2 in openai 3.x, httpx before
    import httpx2 as _http
except ImportError:  # pragma: no cover - older SDKs
    import httpx as _http  # type: ignore[no-redef]

DEFAULT_MODEL = "gpt-4.1-mini"
OPENAI_URL = "https://api.openai.com/v1"


@dataclass
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: str = ""


class OpenAILLMService(LLMService):
    """A chat LLM over the OpenAI chat-completions API (streaming, tools, usage).

    Args:
        model: the model (default ``gpt-4.1-mini``; for Ollama e.g. ``llama3.2``).
        api_key: default ``OPENAI_API_KEY``; with a ``base_url`` and no key a placeholder is sent.
        base_url: default ``OPENAI_BASE_URL``, else OpenAI's.
        temperature, max_tokens: sampling settings (None = the server's default).
        timeout_secs: how long to wait for the server (connecting, and between streamed chunks).
        max_retries: the SDK's retries of failed requests (a voice user is waiting: keep it small).
        client: an ``AsyncOpenAI`` to use instead of making one (it is not closed by this service).
        **kwargs: :class:`~voxloop.services.llm.LLMService` options (``run_in_parallel``,
            ``function_call_timeout_secs``, ``name``).

    Raises:
        ValueError: no API key and no base URL, so there is nothing the service could talk to.
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        api_key: str | None = None,
        base_url: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout_secs: float = 30.0,
        max_retries: int = 1,
        client: AsyncOpenAI | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model=model, temperature=temperature, max_tokens=max_tokens, **kwargs)
        self.timeout_secs = timeout_secs
        self._owns_client = client is None
        if client is None:
            client = make_client(
                "OpenAILLMService", api_key, base_url, timeout=timeout_secs, max_retries=max_retries
            )
        self._client = client
        self.base_url = str(client.base_url).rstrip("/")

    @property
    def client(self) -> AsyncOpenAI:
        return self._client

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()

    def build_request(self, context: Any) -> dict[str, Any]:
        """The ``chat.completions.create`` arguments for ``context`` (without ``stream``)."""
        settings = self.settings
        request: dict[str, Any] = {"model": settings.model, "messages": context.get_messages()}
        tools = getattr(context, "tools", None)
        if tools:
            request["tools"] = tools.to_openai()
            tool_choice = getattr(context, "tool_choice", None)
            if tool_choice is not None:
                request["tool_choice"] = tool_choice
        optional = {
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "seed": settings.seed,
            "frequency_penalty": settings.frequency_penalty,
            "presence_penalty": settings.presence_penalty,
        }
        request.update({key: value for key, value in optional.items() if value is not None})
        if settings.max_tokens is not None:
            # OpenAI's newer models only take max_completion_tokens; local servers know max_tokens.
            key = "max_completion_tokens" if self.base_url == OPENAI_URL else "max_tokens"
            request[key] = settings.max_tokens
        if settings.extra:
            request["extra_body"] = dict(settings.extra)
        return request

    async def generate(self, context: Any) -> AsyncGenerator[LLMOutput, None]:
        request = self.build_request(context)
        calls: dict[int, _ToolCallParts] = {}
        try:
            stream = await self._client.chat.completions.create(
                **request, stream=True, stream_options={"include_usage": True}
            )
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        yield _usage(chunk.usage)
                    if not chunk.choices:
                        continue
                    delta = chunk.choices[0].delta
                    if delta.content:
                        yield delta.content
                    for part in delta.tool_calls or ():
                        call = calls.setdefault(part.index, _ToolCallParts())
                        if part.id:
                            call.id = part.id
                        function = part.function
                        if function is not None:
                            if function.name and function.name != call.name:
                                call.name += function.name
                            if function.arguments:
                                call.arguments += function.arguments
        except openai.OpenAIError as exc:
            raise self._explain(exc) from exc
        except _http.HTTPError as exc:
            raise LLMServiceError(
                f"the connection to {self.base_url} broke off in the middle of the response ({exc})",
                ErrorCategory.CONNECTIVITY,
            ) from exc
        for index in sorted(calls):
            call = calls[index]
            if not call.name:
                logger.warning("%s: tool call #%d without a function name ignored", self, index)
                continue
            yield LLMToolCall(call.id or f"call_{index}", call.name, call.arguments or "{}")

    def _explain(self, exc: openai.OpenAIError) -> LLMServiceError:
        """One clear sentence for what went wrong, with the setting to look at."""
        where = self.base_url
        detail = _server_message(exc)
        if isinstance(exc, openai.AuthenticationError):
            return LLMServiceError(
                f"{where} rejected the API key (401{detail}): check OPENAI_API_KEY",
                ErrorCategory.AUTHENTICATION,
            )
        if isinstance(exc, openai.PermissionDeniedError):
            return LLMServiceError(
                f"{where} refused access (403{detail}): check the key's permissions for model '{self.model}'",
                ErrorCategory.AUTHORIZATION,
            )
        if isinstance(exc, openai.NotFoundError):
            return LLMServiceError(
                f"{where} does not know model '{self.model}' (404{detail})", ErrorCategory.INVALID_REQUEST
            )
        if isinstance(exc, openai.RateLimitError):
            return LLMServiceError(
                f"{where} is rate limiting requests (429{detail})", ErrorCategory.RATE_LIMIT
            )
        if isinstance(exc, openai.APITimeoutError):
            return LLMServiceError(
                f"{where} did not answer within {self.timeout_secs:g} s", ErrorCategory.CONNECTIVITY
            )
        if isinstance(exc, openai.APIConnectionError):
            return LLMServiceError(
                f"cannot connect to the LLM server at {where}: is it running? (set OPENAI_BASE_URL to "
                "change it)",
                ErrorCategory.CONNECTIVITY,
            )
        if isinstance(exc, openai.APIStatusError):
            category = ErrorCategory.SERVER if exc.status_code >= 500 else ErrorCategory.INVALID_REQUEST
            return LLMServiceError(f"{where} answered {exc.status_code}{detail}", category)
        return LLMServiceError(f"{where}: {exc}", ErrorCategory.UNKNOWN)


def _server_message(exc: openai.OpenAIError) -> str:
    """The server's own error message, as ``": message"`` ("" when there is none)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str) and message:
            return f": {message}"
    message = getattr(exc, "message", None)
    return f": {message}" if isinstance(message, str) and message else ""


def _usage(usage: Any) -> LLMTokenUsage:
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return LLMTokenUsage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        total_tokens=usage.total_tokens or 0,
        cache_read_input_tokens=getattr(prompt_details, "cached_tokens", None),
        reasoning_tokens=getattr(completion_details, "reasoning_tokens", None),
        input_audio_tokens=getattr(prompt_details, "audio_tokens", None),
        output_audio_tokens=getattr(completion_details, "audio_tokens", None),
    )
