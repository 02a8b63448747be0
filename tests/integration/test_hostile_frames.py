"""Floods of malformed frames over the real WebSocket wire: each kind of problem is answered once
(then at most every 10 s with a count), not once per frame, and the session goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import pytest

from helpers.server import running_server, start_websocket_session
from voxloop.bots import load_bot
from voxloop.server import ServerConfig
from voxloop.testing.rtvi_client import RTVIClient
from voxloop.transports._throttle import ReportThrottle
from voxloop.transports.serializers import frames_pb2

FLOOD = 50


def audio_frame(audio: bytes, sample_rate: int, num_channels: int = 1) -> bytes:
    frame = frames_pb2.Frame()
    frame.audio.audio = audio
    frame.audio.sample_rate = sample_rate
    frame.audio.num_channels = num_channels
    return bytes(frame.SerializeToString())


@asynccontextmanager
async def echo_session(wire: Literal["protobuf", "json"]) -> AsyncIterator[RTVIClient]:
    async with (
        running_server(ServerConfig(bot=load_bot("echo"))) as (base, _app),
        RTVIClient(await start_websocket_session(base), wire=wire) as client,
    ):
        await client.ready()
        yield client
    assert client.protocol_errors == []


BAD_PROTOBUF: dict[str, bytes | str] = {
    "odd byte count": audio_frame(b"\x01\x02\x03", 16000),
    "sample_rate 0": audio_frame(bytes(640), 0),
    "text frame": "a text frame",
    "undecodable": b"\xff\xff\xff definitely not protobuf",
}
BAD_JSON: dict[str, bytes | str] = {
    "binary frame": b"\x00\x01",
    "invalid JSON": "{not json",
    "JSON list": "[1, 2]",
}


@pytest.mark.parametrize(("wire", "bad"), [("protobuf", BAD_PROTOBUF), ("json", BAD_JSON)])
async def test_a_flood_of_bad_frames_gets_one_error_per_kind(
    wire: Literal["protobuf", "json"], bad: dict[str, bytes | str]
) -> None:
    async with echo_session(wire) as client:
        for _ in range(FLOOD):
            for data in bad.values():
                await client.send_raw(data)
        # Frames are read in order: once this is answered, every bad frame has been handled.
        assert (await client.request("still", "there"))["echo"] == "there"
        errors = [m["data"]["error"] for m in client.of_type("error")]
    assert len(errors) == len(bad), errors
    assert all(e.startswith("invalid frame: ") and "dropped since" not in e for e in errors)


def test_reports_repeat_every_10_s_with_the_count_held_back() -> None:
    throttle = ReportThrottle()
    s = 1_000_000_000
    assert throttle.due("audio", 0) == 0  # the first goes out at once
    assert [throttle.due("audio", t * s) for t in (1, 2, 9)] == [None, None, None]
    assert throttle.due("json", 3 * s) == 0  # each kind on its own
    assert throttle.due("audio", 10 * s) == 3  # then one report with the count since
    assert throttle.due("audio", 11 * s) is None
    assert throttle.due("audio", 25 * s) == 1
    assert ReportThrottle.since(3, "such frames") == " (3 more such frames dropped since the last report)"
    assert ReportThrottle.since(0, "such frames") == ""
