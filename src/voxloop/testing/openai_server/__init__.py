"""A local OpenAI-compatible HTTP server for tests; it checks each request against the `openai` SDK types.

Point a real ``openai.AsyncOpenAI(base_url=server.base_url, api_key="test")`` at it. Each endpoint lives in
its own module and adds its routes here; the server records every request (``server.requests``) and lets a
test script the answers and inject faults (``server.script``, see each endpoint module).
"""

from __future__ import annotations

from ._chat import check_chat_request
from ._server import OpenAITestServer, RecordedRequest

__all__ = ["OpenAITestServer", "RecordedRequest", "check_chat_request"]
