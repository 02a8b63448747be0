"""Pieces of the test bots the integration and browser tests share."""

from __future__ import annotations

from voxloop.rtvi import ClientMessage, RTVIProcessor


def answering_rtvi() -> RTVIProcessor:
    """An RTVIProcessor that echoes every client request's data; a ``fail`` request is refused."""
    rtvi = RTVIProcessor()

    @rtvi.event_handler("on_client_message")
    async def answer(processor: RTVIProcessor, message: ClientMessage) -> None:
        if message.type == "fail":
            await processor.send_error_response(message, "asked to fail")
        else:
            await processor.send_server_response(message, {"echo": message.data})

    return rtvi
