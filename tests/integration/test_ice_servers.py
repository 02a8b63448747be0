"""Configured ICE servers reach aiortc and the clients: `voxloop run --ice-server`, and a real offer.

No real TURN server: a UDP socket on loopback plays one just far enough to show that aiortc uses
it with the configured credentials (it challenges the first Allocate, then refuses the second).
"""

from __future__ import annotations

import asyncio
import os
import sys

import aioice.ice
import httpx
import pytest
from aioice import stun

from helpers.cli import free_port, voxloop_exit
from helpers.server import running_server
from voxloop.bots import load_bot
from voxloop.server import ServerConfig
from voxloop.testing.rtvi_webrtc_client import RTVIWebRTCClient

TURN_USER, TURN_SECRET = "ada", "s3cret"


async def test_voxloop_run_hands_its_ice_servers_to_webrtc_clients() -> None:
    port = free_port()
    args = ["run", "--port", str(port), "--bot", "echo", "--transport", "all"]
    args += ["--ice-server", "stun:127.0.0.1:3478", "--ice-server", "turn:127.0.0.1:3478?transport=tcp"]
    args += ["--ice-username", TURN_USER, "--ice-credential", TURN_SECRET]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxloop.cli", *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            while b"listening on" not in await process.stdout.readline():
                assert process.returncode is None
        async with httpx.AsyncClient(trust_env=False) as http:
            start = (await http.post(f"http://127.0.0.1:{port}/start", json={"transport": "webrtc"})).json()
        assert start["iceConfig"] == {
            "iceServers": [
                {"urls": "stun:127.0.0.1:3478"},
                {
                    "urls": "turn:127.0.0.1:3478?transport=tcp",
                    "username": TURN_USER,
                    "credential": TURN_SECRET,
                },
            ]
        }
    finally:
        process.kill()
        await process.wait()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--ice-server", "turn:127.0.0.1:3478"], {}, "needs a username and a credential"),
        ([], {"VOXLOOP_ICE_SERVERS": "[{nope"}, "VOXLOOP_ICE_SERVERS is not JSON"),
    ],
)
async def test_bad_ice_servers_are_a_clear_error(args: list[str], env: dict[str, str], message: str) -> None:
    code, err = await voxloop_exit("run", *args, env={**os.environ, **env})
    assert code == 2 and message in err, err


class FakeTurn(asyncio.DatagramProtocol):
    """Answers Allocate requests: 401 with a realm and nonce first, then 403; records what came."""

    def __init__(self) -> None:
        self.requests: list[stun.Message] = []
        self.authenticated = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        if request.message_method != stun.Method.ALLOCATE or request.message_class != stun.Class.REQUEST:
            return
        self.requests.append(request)
        reply = stun.Message(stun.Method.ALLOCATE, stun.Class.ERROR, request.transaction_id)
        if "USERNAME" in request.attributes:
            reply.attributes["ERROR-CODE"] = (403, "Forbidden")
            self.authenticated.set()
        else:
            reply.attributes.update({"ERROR-CODE": (401, "Unauthorized"), "REALM": "voxloop", "NONCE": b"n0"})
        assert self.transport is not None
        self.transport.sendto(bytes(reply), addr)


async def test_aiortc_uses_the_configured_turn_server_with_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda *_, **__: ["127.0.0.1"])
    loop = asyncio.get_running_loop()
    udp, turn = await loop.create_datagram_endpoint(FakeTurn, local_addr=("127.0.0.1", 0))
    turn_port = udp.get_extra_info("sockname")[1]
    servers = [{"urls": f"turn:127.0.0.1:{turn_port}", "username": TURN_USER, "credential": TURN_SECRET}]
    config = ServerConfig(bot=load_bot("echo"), transports=("webrtc",), ice_servers=servers)
    try:
        async with running_server(config) as (base, app):
            start = app.state.webrtc.start_reply({"transport": "webrtc"})
            assert start["iceConfig"] == {"iceServers": servers}
            async with RTVIWebRTCClient(f"{base}/sessions/{start['sessionId']}/api/offer") as client:
                await client.ready()  # the TURN server's refusal costs the server its relay candidate only
                assert (await client.request("ping", "through"))["echo"] == "through"
                assert turn.authenticated.is_set()
            first, second = turn.requests[:2]
            assert "USERNAME" not in first.attributes
            assert second.attributes["USERNAME"] == TURN_USER and second.attributes["REALM"] == "voxloop"
    finally:
        udp.close()
