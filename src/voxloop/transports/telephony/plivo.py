"""Plivo: Audio Streams (``<Stream bidirectional="true">``), its V3-signed webhook, its REST hang-up.

The stream's messages, as Plivo's stream event protocol gives them: from Plivo ``start``
(``start.callId``, ``start.streamId``, ``start.mediaFormat``; the XML's ``extraHeaders`` as the
top-level ``extra_headers`` string), ``media`` (``media.payload``, base64 8 kHz mu-law), ``dtmf``
(``dtmf.digit``), ``playedStream`` (``name``: the checkpoint whose preceding audio has played) and
``clearedAudio``; to Plivo ``playAudio`` (``media.contentType``, ``media.sampleRate``,
``media.payload``), ``checkpoint`` (``name``) and ``clearAudio``, each with the ``streamId``. The
stream ends when the socket closes; a ``stop`` (``reason``), which Plivo's stream SDK also knows,
ends it too.

These inner fields were checked against Plivo's own stream SDK (github.com/plivo/plivo-stream-sdk-java,
``com.plivo.stream``: ``MediaData`` track/chunk/timestamp/payload, ``DtmfData`` digit/track,
``PlayAudioMessage`` media.contentType/sampleRate/payload, ``CheckpointMessage`` name,
``ClearAudioMessage``, ``PlayedStreamEvent`` name, ``ClearedAudioEvent``, ``StopEvent`` reason;
every message to Plivo carries ``streamId``).

``extraHeaders`` allows letters and digits only, so the server's parameters (the caller's number,
the one-time token) travel hex-encoded under names without underscores and are decoded here.

The answer-URL webhook (``POST /plivo``, form ``CallUUID``/``From``/``To``) is checked with the SDK's
``validate_v3_signature`` (``X-Plivo-Signature-V3`` and its nonce, ``PLIVO_AUTH_TOKEN``). Hanging up
is ``calls.delete(call_uuid)`` with ``PLIVO_AUTH_ID`` and ``PLIVO_AUTH_TOKEN``.
"""

from __future__ import annotations

import asyncio
import binascii
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any

from ..serializers.base import SerializationError
from ._json_stream import JsonStreamSerializer, check_encoding
from ._provider import (
    FROM_PARAMETER,
    TO_PARAMETER,
    TOKEN_PARAMETER,
    CallInfo,
    ProviderBase,
    WebhookCall,
    WebhookRefused,
    form_webhook,
    sdk_missing,
    secret_missing,
    xml_document,
)
from ._wire import CallStarted, section, text_field

__all__ = ["PlivoProvider", "PlivoSerializer", "plivo_stream_xml"]

#: The server's own stream parameters, under names extraHeaders allows.
_HEADER_NAMES = {name: name.replace("_", "") for name in (TOKEN_PARAMETER, FROM_PARAMETER, TO_PARAMETER)}
_PARAMETER_NAMES = {header: name for name, header in _HEADER_NAMES.items()}


def encode_extra_headers(parameters: Mapping[str, str]) -> str:
    """``name=hexvalue,...``: only letters and digits, as extraHeaders requires."""
    return ",".join(f"{_HEADER_NAMES.get(k, k)}={v.encode().hex()}" for k, v in parameters.items())


def decode_extra_headers(value: object) -> dict[str, str]:
    """The ``extra_headers`` of a start (``a=1;b=2`` or ``a=1,b=2``), the server's own decoded."""
    if value is None or value == "":
        return {}
    if not isinstance(value, str):
        raise SerializationError("extra_headers is not a string")
    parameters: dict[str, str] = {}
    for pair in re.split(r"[;,]", value):
        name, _, raw = pair.partition("=")
        name = name.strip()
        if not name:
            continue
        if name in _PARAMETER_NAMES:
            try:
                parameters[_PARAMETER_NAMES[name]] = bytes.fromhex(raw).decode()
            except (ValueError, UnicodeDecodeError):
                raise SerializationError(f"extra header {name!r} is not hex-encoded text") from None
        else:
            parameters[name] = raw
    return parameters


class PlivoSerializer(JsonStreamSerializer):
    """One Plivo audio stream (8 kHz mu-law)."""

    provider = "plivo"
    label = "Plivo"
    ends_with_stop = False
    mark_event = "playedStream"
    # clearedAudio: our clear took effect; its marks were given up when it was sent.
    ignored_events = frozenset({"clearedAudio"})

    def _mark_name(self, message: dict[str, Any]) -> str:
        return text_field(message, "name")

    def _start(self, message: dict[str, Any]) -> CallStarted:
        start = section(message, "start")
        check_encoding("Plivo", start.get("mediaFormat"), "encoding", "audio/x-mulaw")
        self.stream_id = text_field(start, "streamId")
        return CallStarted(
            call_id=text_field(start, "callId"),
            stream_id=self.stream_id,
            custom_parameters=decode_extra_headers(message.get("extra_headers")),
        )

    def _media_message(self, payload: str) -> dict[str, Any]:
        media = {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": payload}
        return {"event": "playAudio", "media": media, "streamId": self.stream_id}

    def _mark_message(self, name: str) -> dict[str, Any]:
        return {"event": "checkpoint", "streamId": self.stream_id, "name": name}

    def _clear_message(self) -> dict[str, Any]:
        return {"event": "clearAudio", "streamId": self.stream_id}


def plivo_stream_xml(stream_url: str, parameters: Mapping[str, str]) -> str:
    """``<Response><Stream bidirectional="true" keepCallAlive="true" ...>wss://...</Stream></Response>``."""
    response = ET.Element("Response")
    attributes = {
        "bidirectional": "true",
        "keepCallAlive": "true",
        "contentType": "audio/x-mulaw;rate=8000",
    }
    if parameters:
        attributes["extraHeaders"] = encode_extra_headers(parameters)
    ET.SubElement(response, "Stream", attributes).text = stream_url
    return xml_document(response)


class PlivoProvider(ProviderBase):
    """Plivo's side of ``voxloop run --transport plivo``.

    Credentials: ``PLIVO_AUTH_ID`` and ``PLIVO_AUTH_TOKEN`` (arguments win). ``verify=False`` accepts
    unsigned webhooks. ``rest_client``: makes the SDK's ``RestClient`` (tests answer its HTTP).
    """

    name = "plivo"

    def __init__(
        self,
        auth_id: str | None = None,
        auth_token: str | None = None,
        *,
        verify: bool = True,
        rest_client: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(verify=verify, rest_client=rest_client)
        self.auth_id = auth_id or os.environ.get("PLIVO_AUTH_ID")
        self.auth_token = auth_token or os.environ.get("PLIVO_AUTH_TOKEN")

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> WebhookCall:
        params, call = form_webhook(body, "CallUUID")
        if self.verify_signatures:
            signature = headers.get("x-plivo-signature-v3")
            nonce = headers.get("x-plivo-signature-v3-nonce")
            if not signature or not nonce:
                raise WebhookRefused("no X-Plivo-Signature-V3 (and nonce) header")
            if not self.auth_token:
                raise secret_missing("PLIVO_AUTH_TOKEN")
            try:
                from plivo.utils.signature_v3 import validate_v3_signature
            except ImportError:
                raise sdk_missing("plivo") from None
            try:
                valid = validate_v3_signature("POST", url, nonce, self.auth_token, signature, params)
            except (ValueError, TypeError, binascii.Error) as exc:
                raise WebhookRefused(f"the X-Plivo-Signature-V3 cannot be checked: {exc}") from None
            if not valid:
                raise WebhookRefused("the X-Plivo-Signature-V3 does not match this request")
        return call

    def _markup(self, stream_url: str, parameters: Mapping[str, str]) -> str:
        return plivo_stream_xml(stream_url, parameters)

    def serializer(self) -> PlivoSerializer:
        return PlivoSerializer()

    async def hang_up(self, call: CallInfo) -> None:
        client = self._client()
        # The SDK is synchronous (requests): off the event loop.
        await asyncio.to_thread(client.calls.delete, call.call_id)

    def _new_client(self) -> Any:
        if not (self.auth_id and self.auth_token):
            raise RuntimeError("hanging up needs PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN")
        import plivo

        return plivo.RestClient(self.auth_id, self.auth_token)
