"""The server message models against what the published clients declare and current servers send.

Samples follow the type definitions of ``@pipecat-ai/client-js`` 1.13.1 (``dist/index.d.ts``) and
the message models of the peer's server (pipecat 1.14, protocol 2.2.0).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from voxloop.rtvi.messages import SERVER_DATA, validate_server_message
from voxloop.rtvi.protocol import ClientRequest, decode_client_message

CLIENT_TYPES = (
    Path(__file__).resolve().parents[2]
    / "web"
    / "node_modules"
    / "@pipecat-ai"
    / "client-js"
    / "dist"
    / "index.d.ts"
)


def msg(type_: str, data: Any = None, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"label": "rtvi-ai", "type": type_, **extra}
    if data is not None:
        message["data"] = data
    return message


#: One message per inbound type of client-js 1.13.1's ``RTVIMessageType``, shaped as its types say.
CLIENT_DECLARED: dict[str, dict[str, Any]] = {
    "bot-ready": msg(
        "bot-ready", {"version": "2.1.0", "about": {"library": "x", "library_version": "1"}}, id="a1"
    ),
    "error": msg("error", {"error": "boom", "fatal": False, "message": "boom"}),
    "metrics": msg("metrics", {"processing": [{"processor": "llm", "value": 0.2}], "ttfb": []}),
    "server-message": msg("server-message", {"anything": [1, 2]}),
    "server-response": msg("server-response", {"t": "ping", "d": {"n": 1}}, id="a2"),
    "error-response": msg("error-response", {"error": "no"}, id="a3"),
    "append-to-context-result": msg("append-to-context-result", {"result": {"ok": True}}),
    "ui-command": msg("ui-command", {"command": "toast", "payload": {"title": "Hi"}}),
    "ui-job-group": msg(
        "ui-job-group",
        {"kind": "group_started", "job_id": "j1", "workers": ["a", "b"], "cancellable": True, "at": 1},
    ),
    "user-started-speaking": msg("user-started-speaking"),
    "user-stopped-speaking": msg("user-stopped-speaking"),
    "bot-started-speaking": msg("bot-started-speaking"),
    "bot-stopped-speaking": msg("bot-stopped-speaking"),
    "user-mute-started": msg("user-mute-started"),
    "user-mute-stopped": msg("user-mute-stopped"),
    "user-transcription": msg(
        "user-transcription",
        {"text": "hi", "final": True, "timestamp": "2026-01-01T00:00:00", "user_id": "u"},
    ),
    "bot-output": msg(
        "bot-output",
        {
            "text": "Hello there.",
            "aggregated_by": "sentence",
            "segment_id": 42,
            "will_be_spoken": True,
            "spoken_status": "in-progress",
            "spoken_progress": {"accumulated_text": "Hello", "remaining_text": " there."},
        },
    ),
    "bot-transcription": msg("bot-transcription", {"text": "Hello there."}),
    "user-llm-text": msg("user-llm-text", {"text": "hi"}),
    "bot-llm-text": msg("bot-llm-text", {"text": "Hel"}),
    "bot-llm-started": msg("bot-llm-started"),
    "bot-llm-stopped": msg("bot-llm-stopped"),
    "llm-function-call": msg("llm-function-call", {"tool_call_id": "c1", "args": {"city": "Oslo"}}),
    "llm-function-call-started": msg("llm-function-call-started", {"function_name": "weather"}),
    "llm-function-call-in-progress": msg(
        "llm-function-call-in-progress", {"tool_call_id": "c1", "function_name": "weather", "arguments": {}}
    ),
    "llm-function-call-stopped": msg(
        "llm-function-call-stopped", {"tool_call_id": "c1", "cancelled": False, "result": {"t": 3}}
    ),
    "bot-llm-search-response": msg(
        "bot-llm-search-response",
        {
            "search_result": "Oslo is cold",
            "origins": [{"site_uri": "https://x", "results": [{"text": "cold", "confidence": [0.9]}]}],
        },
    ),
    "bot-tts-text": msg("bot-tts-text", {"text": "Hello"}),
    "bot-tts-started": msg("bot-tts-started"),
    "bot-tts-stopped": msg("bot-tts-stopped"),
}

#: What pipecat 1.14 (protocol 2.2.0) sends beyond what client-js 1.13.1 declares.
PEER_ONLY: list[dict[str, Any]] = [
    msg(
        "bot-ready",
        {
            "version": "2.2.0",
            "about": {"library": "pipecat-ai", "library_version": "1.14.0"},
            "capabilities": {"audio_in": True, "audio_out": True, "video_in": False, "metrics": True},
        },
        id="r1",
    ),
    msg(
        "user-input",
        {
            "text": "What time is it?",
            "input_type": "transcription",
            "timestamp": "2026-01-01T00:00:00",
            "final": True,
        },
    ),
    msg("user-input", {"text": "hi", "input_type": "chat", "timestamp": "t", "final": True, "msg_id": "m1"}),
    msg(
        "bot-output",
        {
            "text": "Hello.",
            "output_type": "sentence",
            "text_type": "sentence",
            "aggregated_by": "sentence",
            "segment_id": 7,
            "will_be_spoken": True,
            "spoken_status": "new",
            "spoken_progress": {"accumulated_text": "", "remaining_text": "Hello."},
        },
    ),
    msg("stt-raw-text", {"text": "hi", "user_id": "u", "timestamp": "t", "final": False}),
    msg("llm-raw-text", {"text": "Hel"}),
    msg("tts-raw-text", {"text": "Hello"}),
    msg("bot-llm-marker", {"text": "✓", "kind": "complete", "raw": "✓ Hello", "markers": ["✓", "○"]}),
    msg("bot-tts-audio", {"audio": "AAA=", "sample_rate": 24000, "num_channels": 1}),
    msg("bot-interrupted"),
    msg("vad-user-started-speaking"),
    msg("user-audio-level", {"value": 0.3}),
    msg("system-log", {"text": "started"}),
    msg(
        "ui-job-group", {"kind": "job_update", "job_id": "j1", "worker_name": "a", "data": {"p": 1}, "at": 2}
    ),
    msg(
        "ui-job-group",
        {"kind": "job_completed", "job_id": "j1", "worker_name": "a", "status": "completed", "at": 3},
    ),
    msg("ui-job-group", {"kind": "group_completed", "job_id": "j1", "at": 4}),
    msg(
        "ui-job-group", {"kind": "group_started", "job_id": "j2", "cancellable": True, "at": 0}
    ),  # no workers
]


def inbound_types_declared_by_the_client() -> set[str]:
    """The ``RTVIMessageType`` values after the enum's ``Inbound Messages`` marker."""
    source = CLIENT_TYPES.read_text()
    enum = source[source.index("export enum RTVIMessageType") :]
    enum = enum[: enum.index("}")]
    inbound = enum[enum.index("Inbound Messages") :]
    outbound_results = {"llm-function-call-result"}  # declared among them, sent by the client
    return set(re.findall(r'= "([a-z-]+)"', inbound)) - outbound_results


def test_the_peer_servers_user_input_validates() -> None:
    message = msg(
        "user-input",
        {
            "text": "What time is it?",
            "input_type": "transcription",
            "timestamp": "2026-01-01T00:00:00",
            "final": True,
        },
    )
    validate_server_message(message)


def test_an_integer_segment_id_in_bot_output_validates() -> None:
    validate_server_message(msg("bot-output", {"text": "Hi.", "aggregated_by": "sentence", "segment_id": 12}))
    with pytest.raises(ValueError):
        validate_server_message(msg("bot-output", {"text": "Hi.", "segment_id": [12]}))


@pytest.mark.parametrize("type_", sorted(CLIENT_DECLARED))
def test_every_type_the_client_declares_validates(type_: str) -> None:
    message = CLIENT_DECLARED[type_]
    assert message["type"] == type_
    validate_server_message(message)  # strict: every field is one our models know


@pytest.mark.skipif(not CLIENT_TYPES.exists(), reason="web/node_modules not installed (cd web && npm ci)")
def test_the_table_covers_exactly_the_installed_clients_types() -> None:
    declared = inbound_types_declared_by_the_client()
    assert len(declared) > 25  # the enum was found and read
    assert declared == set(CLIENT_DECLARED)
    assert declared - {"metrics", "server-message"} <= set(SERVER_DATA)


@pytest.mark.parametrize("message", PEER_ONLY, ids=lambda m: m["type"])
def test_what_the_current_peer_server_sends_validates(message: dict[str, Any]) -> None:
    validate_server_message(message)


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        (
            msg("user-input", {"text": "hi", "input_type": "shout", "timestamp": "t", "final": True}),
            "input_type",
        ),
        (
            msg("ui-job-group", {"kind": "job_completed", "job_id": "j", "worker_name": "a", "at": 1}),
            "status",
        ),
        (msg("bot-tts-audio", {"audio": "AAA=", "sample_rate": 0, "num_channels": 1}), "sample_rate"),
        (msg("bot-ready", {"version": "2.2.0", "capabilities": {"audio_in": "maybe"}}), "audio_in"),
        (msg("bot-started-speaking", "oops"), "carries no data"),
    ],
)
def test_wrong_shapes_are_still_refused(message: dict[str, Any], fragment: str) -> None:
    for strict in (True, False):
        with pytest.raises(ValueError, match=fragment):
            validate_server_message(message, strict=strict)


def test_a_newer_servers_additions_pass_leniently_but_not_strictly() -> None:
    newer = [
        msg("bot-said-something-new", {"x": 1}),
        msg("bot-output", {"text": "Hi.", "segment_id": 1, "emotion": "happy"}),
        msg(
            "bot-output",
            {"text": "Hi.", "spoken_progress": {"accumulated_text": "", "remaining_text": "Hi.", "n": 1}},
        ),
        msg("bot-ready", {"version": "2.3.0", "capabilities": {"haptics": True}}),
        msg("bot-llm-text", {"text": "x"}, seq=5),
        msg("bot-stopped-speaking", {"reason": "done"}),
    ]
    for message in newer:
        validate_server_message(message, strict=False)
        with pytest.raises(ValueError, match="unknown|unexpected|carries no data"):
            validate_server_message(message)


def test_a_newer_clients_extra_fields_are_accepted() -> None:
    """What voxloop does with a newer client's message: extra fields are ignored, not refused."""
    raw = {
        "label": "rtvi-ai",
        "type": "send-text",
        "id": "n1",
        "data": {"content": "hi", "options": {"run_immediately": False, "tone": "warm"}, "attachments": []},
    }
    request = decode_client_message(raw)
    assert isinstance(request, ClientRequest)
    assert request.data.model_dump()["content"] == "hi"
