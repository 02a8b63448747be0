"""Every OpenAI service fails at construction, clearly, when it has nothing to talk to."""

from __future__ import annotations

import pytest

from voxloop.services.openai import OpenAILLMService, OpenAISTTService, OpenAITTSService


@pytest.mark.parametrize("service", [OpenAILLMService, OpenAISTTService, OpenAITTSService])
def test_no_key_and_no_url_is_a_clear_error(service: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match=r"OPENAI_API_KEY.*OPENAI_BASE_URL"):
        service()


@pytest.mark.parametrize("service", [OpenAILLMService, OpenAISTTService, OpenAITTSService])
def test_a_local_server_needs_no_key(service: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    assert str(service()._client.base_url).startswith("http://127.0.0.1:11434/v1")


@pytest.mark.parametrize("service", [OpenAILLMService, OpenAISTTService, OpenAITTSService])
def test_requests_fail_fast_instead_of_the_sdks_ten_minutes(
    service: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    client = service()._client
    assert client.timeout <= 30 and client.max_retries <= 1
