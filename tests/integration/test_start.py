"""``POST /start`` without a ``transport``, as the published clients send it with no ``requestData``.

The rule (the peer's runner's): the body's ``transport``, else the one transport served, else
WebRTC. Each reply is checked for its exact shape and then used to reach ``bot-ready``.
"""

from __future__ import annotations

from typing import Any

import aioice.ice
import httpx
import pytest

from helpers.bots import SessionRecordingBot
from helpers.server import running_server
from voxloop.server import ServerConfig
from voxloop.testing.rtvi_client import RTVIClient
from voxloop.testing.rtvi_webrtc_client import RTVIWebRTCClient


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiortc offers host candidates only on non-loopback interfaces: pin them to 127.0.0.1."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda *_, **__: ["127.0.0.1"])


async def post_start(base: str, **kwargs: Any) -> httpx.Response:
    """What ``startBot({endpoint: "/start"})`` sends by default: a JSON content type, no body."""
    async with httpx.AsyncClient(trust_env=False) as http:
        return await http.post(f"{base}/start", headers={"Content-Type": "application/json"}, **kwargs)


def test_the_default_transport_rule() -> None:
    from voxloop.server.app import default_transport

    assert default_transport(("websocket",)) == "websocket"
    assert default_transport(("webrtc",)) == "webrtc"
    assert default_transport(("websocket", "webrtc")) == "webrtc"
    assert default_transport(("webrtc", "websocket")) == "webrtc"


async def test_an_empty_start_on_a_websocket_server_gets_a_websocket(no_leaked_tasks: None) -> None:
    bot = SessionRecordingBot()
    async with running_server(ServerConfig(bot=bot, transports=("websocket",))) as (base, _app):
        empty, braces = await post_start(base), await post_start(base, json={})
        assert empty.status_code == 200 and braces.status_code == 200
        assert empty.json() == braces.json() == {"wsUrl": base.replace("http", "ws") + "/ws"}
        async with RTVIClient(empty.json()["wsUrl"]) as client:
            assert (await client.ready())["data"]["version"] == "2.1.0"
            assert await client.request("ping", 1) == {"echo": 1}
    assert [s.transport for s in bot.sessions] == ["websocket"]


@pytest.mark.parametrize("transports", [("webrtc",), ("websocket", "webrtc")], ids=["webrtc", "all"])
async def test_an_empty_start_on_a_webrtc_server_gets_a_webrtc_session(
    transports: tuple[str, ...], no_leaked_tasks: None
) -> None:
    bot = SessionRecordingBot()
    async with running_server(ServerConfig(bot=bot, transports=transports)) as (base, app):
        reply = await post_start(base)
        assert reply.status_code == 200, reply.text
        start = reply.json()
        assert set(start) == {"sessionId", "iceConfig"} and start["iceConfig"] == {"iceServers": []}
        # The SmallWebRTC client's offer URL: "/start" becomes "/sessions/{sessionId}/api/offer".
        async with RTVIWebRTCClient(f"{base}/sessions/{start['sessionId']}/api/offer") as client:
            assert (await client.ready())["data"]["version"] == "2.1.0"
            assert await client.request("ping", 2) == {"echo": 2}
            assert len(app.state.sessions) == 1
        # Naming the transport still wins; a body without one keeps its session body.
        named = await post_start(base, json={"transport": "websocket"})
        with_body = await post_start(base, json={"body": {"user": "ada"}})
    assert bot.sessions[0].session_id == start["sessionId"] and bot.sessions[0].transport == "webrtc"
    if "websocket" in transports:
        assert named.status_code == 200 and set(named.json()) == {"wsUrl"}
    else:
        assert named.status_code == 400 and "not served" in named.json()["detail"]
    assert with_body.status_code == 200 and set(with_body.json()) == {"sessionId", "iceConfig"}
    pending = app.state.webrtc._pending[with_body.json()["sessionId"]]
    assert pending[1] == {"user": "ada"}
