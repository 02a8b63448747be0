"""A giant send-text over the real WebSocket wire: refused with a clear answer, the session goes on."""

from __future__ import annotations

from helpers.server import running_server, start_websocket_session
from voxloop.bots import load_bot
from voxloop.server import ServerConfig
from voxloop.testing.rtvi_client import RTVIClient


async def test_a_giant_send_text_is_refused_and_the_session_still_answers() -> None:
    async with running_server(ServerConfig(bot=load_bot("echo"))) as (base, _app):
        url = await start_websocket_session(base)
        async with RTVIClient(url) as client:
            await client.ready()
            giant = await client.send_text("lorem ipsum dolor sit amet. " * 36_000)  # ~1 MB, under 1 MiB
            refused = await client.wait_for("error-response", predicate=lambda m: m.get("id") == giant)
            fits = await client.send_text("What time is it?")
            assert (await client.request("still", "there"))["echo"] == "there"
    error = refused["data"]["error"]
    assert error == (
        "Invalid message: send-text: the text has 1008000 characters, more than the limit of 16384"
    )
    assert not [m for m in client.of_type("error-response") if m.get("id") == fits]
    assert client.protocol_errors == []
