"""Vonage: the Voice API WebSocket (raw 16 kHz L16), an NCCO ``connect``, JWT-signed webhooks.

The socket, as Vonage documents it: first a text ``websocket:connected`` event carrying the
``content-type`` and the NCCO endpoint's ``headers``; then binary frames of 20 ms of 16-bit
little-endian PCM (640 bytes at 16 kHz) each way; text ``websocket:dtmf`` events (``digit``). To
Vonage: binary frames of exactly 20 ms, ``{"action": "clear"}`` (barge-in) and ``{"action":
"notify", "payload": ...}``, which Vonage answers with ``websocket:notify`` once the audio queued
before it has played: the marks. Vonage sends no stop: the socket closes when the call ends.

The connected event has no call id, so the NCCO's headers carry it with the caller's numbers and
the one-time token. The answer webhook (``POST /vonage``, JSON ``uuid``/``from``/``to``; set the
application's answer method to POST) is signed with a JWT in ``Authorization: Bearer``: HS256 with
the account's signature secret (``VONAGE_SIGNATURE_SECRET``), checked with the SDK's
``verify_signature``, and its ``payload_hash`` claim must be the SHA-256 of the body. Hanging up is
``voice.hangup(uuid)`` with the application's id and private key (``VONAGE_APPLICATION_ID``,
``VONAGE_PRIVATE_KEY``: the key or a path to it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..serializers.base import SerializationError
from ._provider import (
    CALL_PARAMETER,
    FROM_PARAMETER,
    TO_PARAMETER,
    CallInfo,
    ProviderBase,
    WebhookCall,
    WebhookRefused,
    sdk_missing,
    secret_missing,
)
from ._wire import MAX_MESSAGE_BYTES, CallAudio, CallDtmf, CallEvent, CallStarted, MarkPlayed, json_object

__all__ = ["VonageProvider", "VonageSerializer", "vonage_ncco"]

RATE = 16000
FRAME_BYTES = RATE * 20 // 1000 * 2  # 20 ms of 16-bit mono
CONTENT_TYPE = f"audio/l16;rate={RATE}"


class VonageSerializer:
    """One Vonage WebSocket call (16 kHz L16 in fixed 20 ms frames)."""

    provider = "vonage"
    sample_rate = RATE
    has_marks = True
    ends_with_stop = False
    chunk_ms = 40  # sent as two 20 ms frames

    def __init__(self) -> None:
        self._pending = b""  # bot audio short of a whole frame

    def parse(self, data: bytes | str) -> CallEvent | None:
        if isinstance(data, bytes):
            if len(data) > MAX_MESSAGE_BYTES or len(data) % 2:
                raise SerializationError(f"an audio frame of {len(data)} bytes is not whole 16-bit samples")
            return CallAudio(data)
        message = json_object(data)
        event = message.get("event")
        if event == "websocket:notify":
            payload = message.get("payload")
            name = payload.get("name") if isinstance(payload, dict) else None
            if not isinstance(name, str):
                raise SerializationError("websocket:notify without a payload name")
            return MarkPlayed(name)
        if event == "websocket:dtmf":
            digit = message.get("digit")
            if not isinstance(digit, str):
                raise SerializationError("websocket:dtmf without a digit")
            return CallDtmf(digit)
        if event == "websocket:connected":
            return self._connected(message)
        if event == "websocket:cleared":
            return None
        raise SerializationError(f"unknown Vonage event {event!r}")

    def _connected(self, message: dict[str, Any]) -> CallStarted:
        content_type = str(message.get("content-type", "")).replace(" ", "")
        if content_type != CONTENT_TYPE:
            raise SerializationError(
                f"unsupported Vonage content-type {content_type!r} (the NCCO asks {CONTENT_TYPE})"
            )
        headers = {k: str(v) for k, v in message.items() if k not in ("event", "content-type")}
        call_id = headers.pop(CALL_PARAMETER, "")
        if not call_id:
            raise SerializationError(f"websocket:connected without the {CALL_PARAMETER} header")
        return CallStarted(
            call_id=call_id,
            stream_id=call_id,
            custom_parameters=headers,
            from_number=headers.pop(FROM_PARAMETER, None),
            to_number=headers.pop(TO_PARAMETER, None),
        )

    def audio(self, pcm: bytes) -> list[bytes | str]:
        data = self._pending + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        return [data[i : i + FRAME_BYTES] for i in range(0, whole, FRAME_BYTES)]

    def mark(self, name: str) -> str:
        return json.dumps({"action": "notify", "payload": {"name": name}})

    def clear(self) -> str:
        self._pending = b""
        return json.dumps({"action": "clear"})


def vonage_ncco(stream_url: str, parameters: Mapping[str, str]) -> str:
    """The NCCO: ``connect`` to a ``websocket`` endpoint at 16 kHz, the parameters as its headers."""
    endpoint = {
        "type": "websocket",
        "uri": stream_url,
        "content-type": CONTENT_TYPE,
        "headers": dict(parameters),
    }
    return json.dumps([{"action": "connect", "endpoint": [endpoint]}])


class VonageProvider(ProviderBase):
    """Vonage's side of ``voxloop run --transport vonage`` (see the module docstring for credentials).

    ``verify=False`` accepts unsigned webhooks. ``rest_client``: makes the SDK's ``Vonage`` client.
    """

    name = "vonage"
    markup_type = "application/json"

    def __init__(
        self,
        signature_secret: str | None = None,
        application_id: str | None = None,
        private_key: str | None = None,
        *,
        verify: bool = True,
        rest_client: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(verify=verify, rest_client=rest_client)
        self.signature_secret = signature_secret or os.environ.get("VONAGE_SIGNATURE_SECRET")
        self.application_id = application_id or os.environ.get("VONAGE_APPLICATION_ID")
        self.private_key = private_key or os.environ.get("VONAGE_PRIVATE_KEY")

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> WebhookCall:
        if self.verify_signatures:
            self._check_signature(headers.get("authorization", ""), body)
        try:
            data = json.loads(body) if body else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise WebhookRefused("the answer webhook's body is not a JSON object (set its method to POST)")
        return WebhookCall(
            call_id=_text(data.get("uuid")),
            from_number=_text(data.get("from")),
            to_number=_text(data.get("to")),
        )

    def _check_signature(self, authorization: str, body: bytes) -> None:
        token = authorization.removeprefix("Bearer ").strip()
        if not authorization.startswith("Bearer ") or not token:
            raise WebhookRefused("no Authorization: Bearer JWT")
        if not self.signature_secret:
            raise secret_missing("VONAGE_SIGNATURE_SECRET")
        try:
            import jwt
            from vonage_jwt.verify_jwt import verify_signature
        except ImportError:
            raise sdk_missing("vonage") from None
        try:
            if not verify_signature(token, self.signature_secret):
                raise WebhookRefused("the webhook's JWT is not signed with this account's signature secret")
            claims = jwt.decode(token, self.signature_secret, algorithms=["HS256"])
        except WebhookRefused:
            raise
        except Exception as exc:
            raise WebhookRefused(f"the webhook's JWT does not verify: {exc}") from None
        if claims.get("payload_hash") != hashlib.sha256(body).hexdigest():
            raise WebhookRefused("the webhook's body does not match the JWT's payload_hash")

    def _markup(self, stream_url: str, parameters: Mapping[str, str]) -> str:
        return vonage_ncco(stream_url, parameters)

    def serializer(self) -> VonageSerializer:
        return VonageSerializer()

    async def hang_up(self, call: CallInfo) -> None:
        client = self._client()
        await asyncio.to_thread(client.voice.hangup, call.call_id)  # the SDK is synchronous

    def _new_client(self) -> Any:
        if not (self.application_id and self.private_key):
            raise RuntimeError("hanging up needs VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY")
        from vonage import Auth, Vonage

        key = self.private_key
        if not key.lstrip().startswith("-----") and Path(key).is_file():
            key = Path(key).read_text()
        return Vonage(Auth(application_id=self.application_id, private_key=key))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
