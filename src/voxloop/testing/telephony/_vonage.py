"""Vonage's side of a call, as its Voice API WebSocket and signed-webhook documentation describe it.

:class:`VonageCloud` is the account: a signature secret that signs each webhook's JWT (HS256, with
the body's SHA-256 as ``payload_hash``), an application id and an RSA private key for the REST
API, and :meth:`~VonageCloud.rest_client`, the SDK's ``Vonage`` client whose HTTP this object
answers (``PUT /v1/calls/<uuid>`` with ``{"action": "hangup"}`` ends the emulated call, 204).

:class:`VonageEmulator` is one call: the answer webhook (JSON ``uuid``, ``conversation_uuid``,
``from``, ``to``), the NCCO ``connect`` to a ``websocket`` endpoint, the text
``websocket:connected`` (its ``content-type`` and the endpoint's headers), then binary 20 ms frames
of 16 kHz L16 at real time, ``websocket:dtmf``, and ``websocket:notify`` for each ``notify`` once
the audio before it has played. Every bot frame must be exactly 20 ms. No stop: the socket closes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import uuid
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed

from ._call import EmulatedCall, ServerMessage, post_webhook
from ._line import FRAME_SECS
from ._rest import answering_adapter

__all__ = ["VonageCloud", "VonageEmulator"]

RATE = 16000
FRAME_BYTES = RATE * 20 // 1000 * 2


def _same(pcm: bytes) -> bytes:
    return pcm


class VonageEmulator(EmulatedCall):
    """One Vonage call to ``webhook_url`` (the server's ``POST /vonage``)."""

    def __init__(
        self,
        cloud: VonageCloud,
        webhook_url: str,
        *,
        from_number: str = "447700900000",
        to_number: str = "447700900001",
        token: str | None = None,
    ) -> None:
        super().__init__(encode=_same, decode=_same, wire_bytes_per_sec=RATE * 2, pcm_rate=RATE)
        self.cloud = cloud
        self.webhook_url = webhook_url
        self.call_uuid = self.call_id = self.stream_id = str(uuid.uuid4())
        self.from_number = from_number
        self.to_number = to_number
        self._forced_token = token
        self.ncco: list[Any] | None = None

    async def post_webhook(self) -> httpx.Response:
        body = json.dumps(
            {
                "uuid": self.call_uuid,
                "conversation_uuid": "CON-" + str(uuid.uuid4()),
                "from": self.from_number,
                "to": self.to_number,
                "region_url": "https://api-eu-1.vonage.com",
            }
        ).encode()
        token = self._forced_token or self.cloud.sign(body)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        return await post_webhook(self.webhook_url, body, headers)

    async def dial(self) -> None:
        reply = await self.post_webhook()
        reply.raise_for_status()
        self.ncco = reply.json()
        connect = next(a for a in self.ncco if a.get("action") == "connect")
        endpoint = next(e for e in connect["endpoint"] if e.get("type") == "websocket")
        if endpoint.get("content-type") != f"audio/l16;rate={RATE}":
            raise ValueError(
                f"the NCCO asks {endpoint.get('content-type')!r}, this emulator plays 16 kHz L16"
            )
        await self.open_stream(endpoint["uri"], dict(endpoint.get("headers", {})))

    def _start_message(self, parameters: dict[str, str]) -> dict[str, Any]:
        return {"event": "websocket:connected", "content-type": f"audio/l16;rate={RATE}", **parameters}

    async def send_audio(self, pcm: bytes, sample_rate: int, *, realtime: bool = True) -> None:
        """The caller speaks: binary 20 ms frames of 16 kHz L16, at real time."""
        assert self._socket is not None, "dial() first"
        audio = self._converter.convert(pcm, sample_rate, 1) + self._converter.flush()  # the whole clip
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        for start in range(0, len(audio) - len(audio) % FRAME_BYTES, FRAME_BYTES):
            await self._socket.send(audio[start : start + FRAME_BYTES])
            if realtime:
                deadline += FRAME_SECS
                await asyncio.sleep(max(0.0, deadline - loop.time()))

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        return {"event": "websocket:dtmf", "digit": digit, "duration": 250}

    def _mark_message(self, name: str) -> dict[str, Any]:
        return {"event": "websocket:notify", "payload": {"name": name}}

    def _stop_message(self) -> dict[str, Any] | None:
        return None

    async def _handle(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            if len(data) != FRAME_BYTES:
                self.protocol_errors.append(
                    f"a bot audio frame of {len(data)} bytes, not 20 ms ({FRAME_BYTES})"
                )
            self.line.receive_audio(data)
            return
        await super()._handle(data)

    def _server_message(self, message: dict[str, Any]) -> ServerMessage | None:
        action = message.get("action")
        if action == "notify":
            payload = message.get("payload")
            if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
                self.protocol_errors.append(f"notify without a payload name: {message!r}")
                return None
            return "mark", payload["name"]
        if action == "clear":
            return "clear", None
        self.protocol_errors.append(f"unknown action {action!r}")
        return None

    async def _after_clear(self) -> None:
        try:
            await self.send({"event": "websocket:cleared"})
        except ConnectionClosed:
            pass


class VonageCloud:
    """One Vonage account and application: signs webhooks, answers the Voice API's hang-up."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.signature_secret = secrets.token_urlsafe(32)
        self.application_id = str(uuid.uuid4())
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.calls: dict[str, VonageEmulator] = {}
        self.rest_requests: list[tuple[str, str, dict[str, Any]]] = []

    def sign(self, body: bytes) -> str:
        import jwt

        claims = {
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
            "iss": "Vonage",
            "payload_hash": hashlib.sha256(body).hexdigest(),
            "application_id": self.application_id,
        }
        return jwt.encode(claims, self.signature_secret, algorithm="HS256")

    def _valid_application_jwt(self, token: str) -> bool:
        """The REST API's check: an RS256 JWT of this application, signed with its private key."""
        import jwt
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        public_key = load_pem_private_key(self.private_key.encode(), password=None).public_key()
        try:
            claims = jwt.decode(token, public_key, algorithms=["RS256"])  # type: ignore[arg-type]
        except jwt.PyJWTError:
            return False
        return bool(claims.get("application_id") == self.application_id)

    def call(self, webhook_url: str, **options: Any) -> VonageEmulator:
        emulator = VonageEmulator(self, webhook_url, **options)
        self.calls[emulator.call_uuid] = emulator
        return emulator

    def rest_client(self) -> Any:
        from vonage import Auth, Vonage

        client = Vonage(Auth(application_id=self.application_id, private_key=self.private_key))
        client.voice._http_client._session.mount("https://", answering_adapter(self._answer))
        return client

    async def _answer(self, request: Any) -> int:
        body = json.loads(request.body) if request.body else {}
        self.rest_requests.append((request.method, request.url, body))
        prefix = "https://api.nexmo.com/v1/calls/"
        call_uuid = str(request.url).removeprefix(prefix)
        emulator = self.calls.get(call_uuid) if str(request.url).startswith(prefix) else None
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, str):
            authorization = authorization.encode()
        if not self._valid_application_jwt(authorization.removeprefix(b"Bearer ").decode()):
            return 401
        if request.method != "PUT" or emulator is None or body != {"action": "hangup"}:
            return 404
        await emulator.end_from_api()
        return 204
