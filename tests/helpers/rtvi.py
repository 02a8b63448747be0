"""Helpers to talk to an RTVIProcessor the way a client would, at the frame level."""

from __future__ import annotations

from typing import Any

from voxloop.frames import Frame, InputTransportMessageFrame
from voxloop.pipeline import FrameProcessor, Pipeline
from voxloop.rtvi import RTVIProcessor, validate_server_message
from voxloop.testing import MemoryTransport, PipelineHarness


class RTVISession:
    """A harness around ``[rtvi, (input,) *middle, output]`` (a MemoryTransport's) with client helpers.

    Frames are pushed from the top, in order with the harness's End; what the output sends reaches
    ``client`` (``transport.client``).
    """

    def __init__(
        self,
        rtvi: RTVIProcessor | None = None,
        *middle: FrameProcessor,
        with_input: bool = False,
        transport: MemoryTransport | None = None,
        **options: Any,
    ) -> None:
        self.rtvi = rtvi or RTVIProcessor(client_ready_timeout_secs=None)
        # Frames are not recorded twice: the harness has them (and tests count what is still alive).
        self.transport = transport or MemoryTransport(record_frames=False)
        self.client = self.transport.client
        self.output = self.transport.output()
        inputs = [self.transport.input()] if with_input else []
        self.harness = PipelineHarness(Pipeline([self.rtvi, *inputs, *middle, self.output]), **options)

    async def __aenter__(self) -> RTVISession:
        await self.harness.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.harness.__aexit__(*exc)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every RTVI message sent to the client so far, each checked against the schema."""
        found = list(self.client.messages)
        for message in found:
            validate_server_message(message)
        return found

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == type_]

    async def send(self, message: Any) -> None:
        await self.harness.push(InputTransportMessageFrame(message=message))

    async def wait_for_message(self, type_: str, count: int = 1, timeout: float = 5.0) -> dict[str, Any]:
        return await self.client.wait_for_message(type_, count=count, timeout=timeout)

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
