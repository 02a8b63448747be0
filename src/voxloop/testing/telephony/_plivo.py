"""Plivo's side of a call, as its Stream XML and stream event protocol describe it.

:class:`PlivoCloud` is the account (``auth_id``, ``auth_token``): it signs the answer-URL webhook
as Plivo does (``X-Plivo-Signature-V3`` over the URL and sorted form parameters with a nonce,
computed with the SDK's own signature functions), and its :meth:`~PlivoCloud.rest_client` is the
SDK's ``RestClient`` with an HTTP adapter this object answers (``DELETE .../Call/<uuid>/`` ends the
emulated call, 204).

:class:`PlivoEmulator` is one call: the webhook (``CallUUID``, ``From``, ``To``, ``Direction``...),
the ``<Stream bidirectional="true">`` answer, then ``start`` (``start.callId``, ``start.streamId``,
``mediaFormat``, top-level ``extra_headers`` as ``a=1;b=2``), 20 ms ``media``, ``dtmf``,
``playedStream`` for each ``checkpoint`` once played, ``clearedAudio`` after a ``clearAudio``. No
``stop``: the socket closes when the call ends.
"""

from __future__ import annotations

import secrets
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import httpx

from voxloop.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16

from ._call import FORM, EmulatedCall, ServerMessage, post_webhook
from ._rest import answering_adapter

__all__ = ["PlivoCloud", "PlivoEmulator"]


class PlivoEmulator(EmulatedCall):
    """One Plivo call to ``webhook_url`` (the server's ``POST /plivo``)."""

    def __init__(
        self,
        cloud: PlivoCloud,
        webhook_url: str,
        *,
        from_number: str = "14155550100",
        to_number: str = "14155550199",
        signature: str | None = None,
    ) -> None:
        super().__init__(encode=pcm16_to_ulaw, decode=ulaw_to_pcm16)
        self.cloud = cloud
        self.webhook_url = webhook_url
        self.call_uuid = self.call_id = str(uuid.uuid4())
        self.stream_id = str(uuid.uuid4())
        self.from_number = from_number
        self.to_number = to_number
        self._forced_signature = signature
        self.xml: str | None = None
        self.extra_headers = ""

    async def post_webhook(self) -> httpx.Response:
        params = {
            "CallUUID": self.call_uuid,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "Event": "StartApp",
            "From": self.from_number,
            "To": self.to_number,
        }
        nonce = secrets.token_hex(10)
        signature = self._forced_signature or self.cloud.sign(self.webhook_url, params, nonce)
        headers = {**FORM, "X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}
        return await post_webhook(self.webhook_url, urlencode(params), headers)

    async def dial(self) -> None:
        reply = await self.post_webhook()
        reply.raise_for_status()
        self.xml = reply.text
        root = ET.fromstring(reply.text)
        stream = root.find("./Stream")
        if root.tag != "Response" or stream is None or not (stream.text or "").strip():
            raise ValueError(f"Plivo XML without <Response><Stream>url</Stream>: {reply.text}")
        if stream.get("bidirectional") != "true":
            raise ValueError("the stream is not bidirectional: the bot could not speak")
        # Plivo hands the XML's comma-separated extraHeaders to the socket as "a=1;b=2".
        self.extra_headers = ";".join(filter(None, (stream.get("extraHeaders") or "").split(",")))
        await self.open_stream((stream.text or "").strip(), {})

    def _event(self, event: str, **body: Any) -> dict[str, Any]:
        return {
            "event": event,
            "sequenceNumber": int(self.next_sequence()),
            "streamId": self.stream_id,
            **body,
        }

    def _start_message(self, parameters: dict[str, str]) -> dict[str, Any]:
        start = {
            "callId": self.call_uuid,
            "streamId": self.stream_id,
            "accountId": self.cloud.auth_id,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        }
        return {
            "event": "start",
            "sequenceNumber": int(self.next_sequence()),
            "start": start,
            "extra_headers": self.extra_headers,
        }

    # The fields of media, dtmf, playedStream and clearedAudio, and of the server's playAudio,
    # checkpoint and clearAudio, as Plivo's own stream SDK has them (github.com/plivo/
    # plivo-stream-sdk-java, com.plivo.stream: MediaData's chunk is a number, its timestamp a string).

    def _media_message(self, payload: str, chunk: int, timestamp_ms: int) -> dict[str, Any]:
        media = {"track": "inbound", "timestamp": str(timestamp_ms), "chunk": chunk, "payload": payload}
        return self._event("media", media=media)

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        return self._event("dtmf", dtmf={"track": "inbound", "digit": digit})

    def _mark_message(self, name: str) -> dict[str, Any]:
        return self._event("playedStream", name=name)

    def _stop_message(self) -> dict[str, Any] | None:
        return None  # Plivo just closes the socket

    def _server_message(self, message: dict[str, Any]) -> ServerMessage | None:
        event = message.get("event")
        if message.get("streamId") != self.stream_id:
            self.protocol_errors.append(f"{event} with streamId {message.get('streamId')!r}")
        if event == "playAudio":
            media = message.get("media")
            if (
                not isinstance(media, dict)
                or media.get("contentType") != "audio/x-mulaw"
                or media.get("sampleRate") != 8000
            ):
                self.protocol_errors.append(f"playAudio not 8 kHz mu-law: {str(message)[:120]}")
                return None
            return self.media_payload(message)
        if event == "checkpoint":
            name = message.get("name")
            if not isinstance(name, str):
                self.protocol_errors.append(f"checkpoint without a name: {message!r}")
                return None
            return "mark", name
        if event == "clearAudio":
            return "clear", None
        self.protocol_errors.append(f"unknown event {event!r}")
        return None

    async def _after_clear(self) -> None:
        await self.send(self._event("clearedAudio"))


class PlivoCloud:
    """One Plivo account: signs webhooks, answers the REST API's hang-up for its calls."""

    def __init__(self) -> None:
        self.auth_id = "MA" + secrets.token_hex(9).upper()
        self.auth_token = secrets.token_urlsafe(30)
        self.calls: dict[str, PlivoEmulator] = {}
        self.rest_requests: list[tuple[str, str, dict[str, Any]]] = []

    def sign(self, url: str, params: dict[str, str], nonce: str) -> str:
        from plivo.utils.signature_v3 import construct_post_url, get_signature_v3

        base_url = construct_post_url(url, dict(params)).decode("utf-8")
        signature: bytes = get_signature_v3(self.auth_token.encode(), base_url, nonce.encode())
        return signature.decode()

    def call(self, webhook_url: str, **options: Any) -> PlivoEmulator:
        emulator = PlivoEmulator(self, webhook_url, **options)
        self.calls[emulator.call_uuid] = emulator
        return emulator

    def rest_client(self) -> Any:
        import plivo

        client = plivo.RestClient(self.auth_id, self.auth_token)
        client.session.mount("https://", answering_adapter(self._answer))
        return client

    async def _answer(self, request: Any) -> int:
        self.rest_requests.append((request.method, request.url, {}))
        prefix = f"https://api.plivo.com/v1/Account/{self.auth_id}/Call/"
        call_uuid = str(request.url).removeprefix(prefix).rstrip("/")
        emulator = self.calls.get(call_uuid) if str(request.url).startswith(prefix) else None
        if request.method != "DELETE" or emulator is None:
            return 404
        await emulator.end_from_api()
        return 204
