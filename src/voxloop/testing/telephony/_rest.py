"""The providers' REST APIs answered by the emulated accounts, for SDKs built on ``requests``.

Plivo's and Vonage's SDKs are synchronous and run in a thread (as the server runs them); the
adapter hands each request to the account's ``answer`` coroutine on the test's event loop and
returns its status, so the SDK builds and sends exactly what it would send to the real API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["answering_adapter"]

#: How long the SDK's thread waits for the emulated account's answer.
ANSWER_TIMEOUT_SECS = 10


def answering_adapter(answer: Callable[[Any], Coroutine[Any, Any, int]]) -> Any:
    """A ``requests`` transport adapter whose every request ``answer(request)`` answers (a status,
    no body), on the running event loop."""
    import requests
    from requests.adapters import BaseAdapter

    loop = asyncio.get_running_loop()

    class _Answer(BaseAdapter):
        def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
            future = asyncio.run_coroutine_threadsafe(answer(request), loop)
            response = requests.Response()
            response.status_code = future.result(ANSWER_TIMEOUT_SECS)
            response.url, response._content, response.request = request.url or "", b"", request
            return response

        def close(self) -> None:
            pass

    return _Answer()
