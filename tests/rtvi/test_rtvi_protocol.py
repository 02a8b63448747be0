from __future__ import annotations

import json

import pytest

from voxloop.rtvi import PROTOCOL_VERSION, ClientRequest, Rejection, decode_client_message, negotiate_version
from voxloop.rtvi.messages import ClientMessageData


@pytest.mark.parametrize(
    ("version", "generation", "bot_ready", "problem"),
    [
        ("2.1.0", 2, "2.1.0", None),
        ("2.0.0", 2, "2.1.0", None),
        ("2.9.3", 2, "2.1.0", None),
        ("1.2.0", 1, "1.2.0", None),
        ("1.0.0", 1, "1.0.0", None),
        ("0.3.0", 0, "0.3.0", None),
        (None, 0, "0.3.0", None),
        ("3.0.0", 2, "2.1.0", "RTVI version 3.0.0 is not compatible with server protocol 2.1.0."),
        ("1.2", 2, "2.1.0", "Invalid client version format (1.2)."),
        ("1.2.3.0", 2, "2.1.0", "Invalid client version format (1.2.3.0)."),
        ("junk", 2, "2.1.0", "Invalid client version format (junk)."),
        (7, 2, "2.1.0", "Invalid client version format (7)."),
    ],
)
def test_version_negotiation(version, generation, bot_ready, problem) -> None:
    result = negotiate_version(version)
    assert result.generation == generation
    assert result.bot_ready_version == bot_ready
    if problem is None:
        assert result.problem is None
    else:
        assert result.problem.startswith(problem)
        assert result.problem.endswith("Compatibility issues may occur.")


def test_protocol_version_is_the_current_clients() -> None:
    assert PROTOCOL_VERSION == "2.1.0"


def test_valid_message_decodes() -> None:
    raw = json.dumps({"label": "rtvi-ai", "type": "client-message", "id": "ab12cd34", "data": {"t": "hi"}})
    decoded = decode_client_message(raw)
    assert isinstance(decoded, ClientRequest)
    assert decoded.type == "client-message" and decoded.id == "ab12cd34"
    assert isinstance(decoded.data, ClientMessageData) and decoded.data.t == "hi"


def test_numeric_id_is_kept_as_text() -> None:
    decoded = decode_client_message({"label": "rtvi-ai", "type": "disconnect-bot", "id": 42})
    assert isinstance(decoded, ClientRequest) and decoded.id == "42"


@pytest.mark.parametrize(
    ("raw", "reply"),
    [
        (
            "{not json",
            {"label": "rtvi-ai", "type": "error", "data": {"fatal": False}},
        ),
        ("[1, 2]", {"label": "rtvi-ai", "type": "error", "data": {"fatal": False}}),
        ({"label": "rtvi-ai", "id": "x1"}, {"label": "rtvi-ai", "type": "error", "data": {"fatal": False}}),
        (b"\xff\xfe", {"label": "rtvi-ai", "type": "error", "data": {"fatal": False}}),
    ],
)
def test_unreadable_messages_get_an_error(raw, reply) -> None:
    decoded = decode_client_message(raw)
    assert isinstance(decoded, Rejection) and decoded.reply is not None
    assert {k: v for k, v in decoded.reply.items() if k != "data"} == {
        k: v for k, v in reply.items() if k != "data"
    }
    assert decoded.reply["data"]["fatal"] is False
    assert decoded.reply["data"]["error"].startswith("Invalid RTVI")
    assert "id" not in decoded.reply


def test_exact_error_for_malformed_json() -> None:
    decoded = decode_client_message('{"label": "rtvi-ai"')
    assert isinstance(decoded, Rejection)
    assert decoded.reply == {
        "label": "rtvi-ai",
        "type": "error",
        "data": {
            "error": "Invalid RTVI message: not JSON (Expecting ',' delimiter: line 1 column 20 (char 19))",
            "fatal": False,
        },
    }


def test_wrong_label_is_dropped_with_a_reason() -> None:
    decoded = decode_client_message({"label": "other", "type": "client-ready"})
    assert isinstance(decoded, Rejection) and decoded.reply is None
    assert "label 'other'" in decoded.reason


def test_unknown_type_gets_exact_error_response() -> None:
    decoded = decode_client_message({"label": "rtvi-ai", "type": "make-coffee", "id": "c0ffee00"})
    assert isinstance(decoded, Rejection)
    assert decoded.reply == {
        "label": "rtvi-ai",
        "type": "error-response",
        "id": "c0ffee00",
        "data": {"error": "Unsupported type make-coffee"},
    }


@pytest.mark.parametrize(
    ("type_", "data", "fragment"),
    [
        ("client-message", {"d": 1}, "client-message: t: Field required"),
        ("send-text", {"content": 5}, "send-text: content: Input should be a valid string"),
        ("dtmf", {"button": "1"}, "dtmf: buttons: Field required"),
        ("dtmf", {"buttons": []}, "dtmf: buttons: List should have at least 1 item"),
        ("dtmf", {"buttons": ["A"]}, "dtmf: buttons.0: Input should be"),
        ("raw-audio", {"base64Audio": "AAA=", "sampleRate": 0, "numChannels": 1}, "sampleRate"),
        ("llm-function-call-result", {"function_name": "f"}, "tool_call_id: Field required"),
        ("action", {"service": "tts"}, "action: action: Field required"),
        ("client-message", "not an object", "client-message: data: Input should be a valid dictionary"),
    ],
)
def test_invalid_data_gets_error_response_naming_the_problem(type_, data, fragment) -> None:
    decoded = decode_client_message({"label": "rtvi-ai", "type": type_, "id": "bad00001", "data": data})
    assert isinstance(decoded, Rejection) and decoded.reply is not None
    assert decoded.reply["type"] == "error-response" and decoded.reply["id"] == "bad00001"
    assert decoded.reply["data"]["error"].startswith("Invalid message: ")
    assert fragment in decoded.reply["data"]["error"]


def test_oversized_message_is_refused_before_parsing() -> None:
    big = json.dumps({"label": "rtvi-ai", "type": "client-message", "data": {"t": "x", "d": "y" * 2000}})
    decoded = decode_client_message(big, max_bytes=1000)
    assert isinstance(decoded, Rejection)
    assert decoded.reply == {
        "label": "rtvi-ai",
        "type": "error",
        "data": {"error": f"RTVI message too large: {len(big)} bytes (limit 1000)", "fatal": False},
    }
    assert isinstance(decode_client_message(big.encode(), max_bytes=1000), Rejection)
    assert isinstance(decode_client_message(big), ClientRequest)
