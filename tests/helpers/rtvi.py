"""Helpers to talk to an RTVIProcessor the way a client would, at the frame level."""

from __future__ import annotations

import asyncio
from typing import Any

from voxloop.frames import Frame, InputTransportMessageFrame, OutputTransportMessageUrgentFrame
from voxloop.pipeline import FrameProcessor
from voxloop.rtvi import RTVIProcessor, validate_server_message
from voxloop.testing import PipelineHarness


class FakeOutput(FrameProcessor):
    """Stands in for an output transport: what it pushes counts as played."""

    plays_output = True


class RTVISession:
    """A harness around ``[rtvi, *middle, FakeOutput]`` with client-side helpers."""

    def __init__(self, rtvi: RTVIProcessor | None = None, *middle: FrameProcessor, **options: Any) -> None:
        self.rtvi = rtvi or RTVIProcessor(client_ready_timeout_secs=None)
        self.output = FakeOutput()
        from voxloop.pipeline import Pipeline

        self.harness = PipelineHarness(Pipeline([self.rtvi, *middle, self.output]), **options)

    async def __aenter__(self) -> RTVISession:
        await self.harness.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.harness.__aexit__(*exc)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every RTVI message sent to the client so far, each checked against the schema."""
        found = [
            f.message
            for f in self.harness.down_recorder.frames
            if isinstance(f, OutputTransportMessageUrgentFrame)
        ]
        for message in found:
            validate_server_message(message)
        return found

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == type_]

    async def send(self, message: Any) -> None:
        await self.harness.push(InputTransportMessageFrame(message=message))

    async def wait_for_message(self, type_: str, count: int = 1, timeout: float = 5.0) -> dict[str, Any]:
        recorder = self.harness.down_recorder

        def matching() -> list[dict[str, Any]]:
            return [
                f.message
                for f in recorder.frames
                if isinstance(f, OutputTransportMessageUrgentFrame) and f.message.get("type") == type_
            ]

        async with asyncio.timeout(timeout), recorder._arrived:
            await recorder._arrived.wait_for(lambda: len(matching()) >= count)
        return matching()[count - 1]

    async def request(self, type_: str, data: Any = None, id: str = "req00001") -> None:
        message: dict[str, Any] = {"label": "rtvi-ai", "type": type_, "id": id}
        if data is not None:
            message["data"] = data
        await self.send(message)

    async def ready(self, version: str | None = "2.1.0") -> dict[str, Any]:
        data = {"version": version, "about": {"library": "test-client"}} if version else {}
        await self.request("client-ready", data, id="ready001")
        return await self.wait_for_message("bot-ready")

    def down(self, frame_type: type[Frame]) -> list[Any]:
        return self.harness.down_recorder.of_type(frame_type)

    def up(self, frame_type: type[Frame]) -> list[Any]:
        return self.harness.up_recorder.of_type(frame_type)
