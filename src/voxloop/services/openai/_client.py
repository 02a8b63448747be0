"""One way to make the SDK client for every OpenAI service, with the same settings and the same errors."""

from __future__ import annotations

import os
from typing import Any

from openai import AsyncOpenAI

# Local servers ignore the key, but the SDK insists on one.
PLACEHOLDER_API_KEY = "not-needed"


def make_client(service: str, api_key: str | None, base_url: str | None, **options: Any) -> AsyncOpenAI:
    """An ``AsyncOpenAI`` from the arguments, else ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``.

    A base URL with no key gets a placeholder key (Ollama, vLLM and llama.cpp need none). With neither,
    there is nothing to talk to: a ValueError names both variables, at construction rather than at the
    user's first question. ``options`` go to the client (``timeout``, ``max_retries``).
    """
    api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    if api_key is None and base_url is None:
        raise ValueError(
            f"{service} needs an API key: set OPENAI_API_KEY (or pass api_key=...), or point "
            "OPENAI_BASE_URL (base_url=...) at a local OpenAI-compatible server such as Ollama "
            "(http://localhost:11434/v1) or llama.cpp (http://localhost:8080/v1)"
        )
    return AsyncOpenAI(api_key=api_key or PLACEHOLDER_API_KEY, base_url=base_url, **options)
