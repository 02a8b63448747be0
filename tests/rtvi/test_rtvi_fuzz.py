"""Property tests: whatever a client sends, the processor never raises and always answers or logs."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxloop.frames import StartFrame
from voxloop.pipeline import DOWNSTREAM, UPSTREAM
from voxloop.rtvi import RTVIProcessor
from voxloop.rtvi.messages import CLIENT_DATA, validate_server_message
from voxloop.testing import FrameRecorder

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)

VALID = [
    {"label": "rtvi-ai", "type": "client-ready", "id": "a1", "data": {"version": "2.1.0", "about": {}}},
    {"label": "rtvi-ai", "type": "client-message", "id": "a2", "data": {"t": "x", "d": {"k": 1}}},
    {"label": "rtvi-ai", "type": "send-text", "id": "a3", "data": {"content": "hi", "options": {}}},
    {"label": "rtvi-ai", "type": "dtmf", "id": "a4", "data": {"buttons": ["1", "#"]}},
    {
        "label": "rtvi-ai",
        "type": "raw-audio",
        "id": "a5",
        "data": {"base64Audio": "AAA=", "sampleRate": 16000, "numChannels": 1},
    },
    {
        "label": "rtvi-ai",
        "type": "llm-function-call-result",
        "id": "a6",
        "data": {"function_name": "f", "tool_call_id": "t", "arguments": {}, "result": "ok"},
    },
    {
        "label": "rtvi-ai",
        "type": "update-config",
        "id": "a7",
        "data": {"config": [{"service": "tts", "options": [{"name": "voice", "value": "x"}]}]},
    },
    {"label": "rtvi-ai", "type": "action", "id": "a8", "data": {"service": "tts", "action": "say"}},
]


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    message = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    for _ in range(draw(st.integers(1, 3))):
        choice = draw(st.integers(0, 4))
        if choice == 0 and message:
            message.pop(draw(st.sampled_from(sorted(message))))
        elif choice == 1:
            message[draw(st.sampled_from(["label", "type", "id", "data"]))] = draw(json_values)
        elif choice == 2 and isinstance(message.get("data"), dict) and message["data"]:
            key = draw(st.sampled_from(sorted(message["data"])))
            message["data"][key] = draw(json_values)
        elif choice == 3:
            message["type"] = draw(st.sampled_from(sorted(CLIENT_DATA)))
        else:
            return json.dumps(message)[: draw(st.integers(0, 60))]
    return message


anything = (
    mutated()
    | json_values
    | st.text(max_size=80)
    | st.binary(max_size=80)
    | st.dictionaries(st.sampled_from(["label", "type", "id", "data"]), json_values)
)


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def _exercise(message: Any) -> None:
    up, rtvi, down = (
        FrameRecorder(UPSTREAM),
        RTVIProcessor(client_ready_timeout_secs=None),
        FrameRecorder(DOWNSTREAM),
    )
    up.link(rtvi)
    rtvi.link(down)
    await up.queue_frame(StartFrame())
    before = len(down.frames) + len(up.frames)
    counter = _Counter()
    logger = logging.getLogger("voxloop")
    logger.addHandler(counter)
    try:
        await rtvi.handle_message(message)
    finally:
        logger.removeHandler(counter)
        await rtvi.cleanup()
    reacted = len(down.frames) + len(up.frames) > before
    assert reacted or counter.count, f"no answer and no log for {message!r}"
    for frame in down.frames:
        if hasattr(frame, "message"):
            validate_server_message(frame.message)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anything)
def test_any_input_is_answered_or_logged_and_never_raises(message: Any) -> None:
    asyncio.run(_exercise(message))
