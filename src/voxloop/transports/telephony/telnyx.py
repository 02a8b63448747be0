"""Telnyx: TeXML ``<Connect><Stream bidirectionalMode="rtp">``, its media stream, its signed webhook.

The stream's frames, as Telnyx's media-streaming reference gives them: from Telnyx ``connected``,
``start`` (top-level ``stream_id``; ``start.call_control_id``, ``start.from``, ``start.to``,
``start.custom_parameters``, ``start.media_format.encoding`` PCMU or PCMA at 8 kHz), ``media``
(``media.payload``: base64 RTP payload without headers, ``media.track``), ``dtmf`` (``dtmf.digit``),
``mark`` (once the media before it has played; a ``clear`` returns the queued ones), ``error`` and
``stop``; to Telnyx ``media`` (``media.payload``), ``mark`` (``mark.name``) and ``clear``.

The TeXML webhook (``POST /telnyx``, form-encoded like TwiML's) is signed with Ed25519 over
``"<telnyx-timestamp>|<body>"``; the SDK's ``webhooks.unwrap`` checks it with ``TELNYX_PUBLIC_KEY``
(the account's public key, base64) and refuses timestamps more than five minutes off. Hanging up is
Call Control's ``calls.actions.hangup(call_control_id)`` with ``TELNYX_API_KEY``.
"""

from __future__ import annotations

import base64
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from ...audio.g711 import alaw_to_pcm16, pcm16_to_alaw, pcm16_to_ulaw, ulaw_to_pcm16
from ..serializers.base import SerializationError
from ._provider import CallInfo, Markup, WebhookCall, WebhookRefused
from ._wire import (
    CallAudio,
    CallDtmf,
    CallEvent,
    CallStarted,
    CallStopped,
    MarkPlayed,
    b64decode,
    json_object,
    section,
    string_map,
    text_field,
)

__all__ = ["TelnyxProvider", "TelnyxSerializer", "texml_connect_stream"]

_CODECS = {"PCMU": (ulaw_to_pcm16, pcm16_to_ulaw), "PCMA": (alaw_to_pcm16, pcm16_to_alaw)}


class TelnyxSerializer:
    """One Telnyx media stream (8 kHz PCMU or PCMA, as its ``start`` says)."""

    provider = "telnyx"
    sample_rate = 8000
    has_marks = True
    ends_with_stop = True

    def __init__(self) -> None:
        self.stream_id: str | None = None
        self.encoding = "PCMU"
        self._decode, self._encode = _CODECS["PCMU"]

    def parse(self, data: bytes | str) -> CallEvent | None:
        message = json_object(data)
        event = message.get("event")
        if event == "media":
            media = section(message, "media")
            if media.get("track", "inbound") != "inbound":
                return None
            return CallAudio(self._decode(b64decode(media.get("payload"))))
        if event == "mark":
            return MarkPlayed(text_field(section(message, "mark"), "name"))
        if event == "dtmf":
            return CallDtmf(text_field(section(message, "dtmf"), "digit"))
        if event == "start":
            return self._start(message)
        if event == "stop":
            return CallStopped()
        if event == "connected":
            return None
        if event == "error":
            raise SerializationError(f"Telnyx reported a stream error: {message.get('payload')!r}")
        raise SerializationError(f"unknown Telnyx event {event!r}")

    def _start(self, message: dict[str, Any]) -> CallStarted:
        start = section(message, "start")
        media_format = start.get("media_format")
        encoding = media_format.get("encoding", "PCMU") if isinstance(media_format, dict) else "PCMU"
        if encoding not in _CODECS:
            raise SerializationError(f"unsupported Telnyx media encoding {encoding!r} (use PCMU or PCMA)")
        self.encoding = encoding
        self._decode, self._encode = _CODECS[encoding]
        self.stream_id = text_field(message, "stream_id")
        return CallStarted(
            call_id=text_field(start, "call_control_id"),
            stream_id=self.stream_id,
            custom_parameters=string_map(start.get("custom_parameters")),
            from_number=start.get("from") if isinstance(start.get("from"), str) else None,
            to_number=start.get("to") if isinstance(start.get("to"), str) else None,
        )

    def audio(self, pcm: bytes) -> list[bytes | str]:
        payload = base64.b64encode(self._encode(pcm)).decode("ascii")
        return [json.dumps({"event": "media", "media": {"payload": payload}})]

    def mark(self, name: str) -> str:
        return json.dumps({"event": "mark", "mark": {"name": name}})

    def clear(self) -> str:
        return json.dumps({"event": "clear"})


def texml_connect_stream(stream_url: str, parameters: Mapping[str, str]) -> str:
    """TeXML ``<Connect><Stream url=... bidirectionalMode="rtp">`` with ``<Parameter>``s."""
    response = ET.Element("Response")
    attributes = {"url": stream_url, "bidirectionalMode": "rtp", "bidirectionalCodec": "PCMU"}
    stream = ET.SubElement(ET.SubElement(response, "Connect"), "Stream", attributes)
    for name, value in parameters.items():
        ET.SubElement(stream, "Parameter", name=name, value=value)
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, encoding="unicode")


class TelnyxProvider:
    """Telnyx's side of ``voxloop run --transport telnyx``.

    Credentials: ``TELNYX_PUBLIC_KEY`` (checks webhooks) and ``TELNYX_API_KEY`` (hangs up); arguments
    win. ``verify=False`` accepts unsigned webhooks. ``rest_client``: makes the SDK's ``AsyncTelnyx``.
    """

    name = "telnyx"

    def __init__(
        self,
        public_key: str | None = None,
        api_key: str | None = None,
        *,
        verify: bool = True,
        rest_client: Callable[[], Any] | None = None,
    ) -> None:
        self.public_key = public_key or os.environ.get("TELNYX_PUBLIC_KEY")
        self.api_key = api_key or os.environ.get("TELNYX_API_KEY")
        self.verify_signatures = verify
        self._rest_client = rest_client
        self._verifier: Any = None
        if verify and self.public_key:
            self._verifier = self._sdk_client()  # the SDK takes seconds to import: not on a call's time

    def _sdk_client(self) -> Any:
        try:
            from telnyx import Telnyx
        except ImportError:
            return None
        return Telnyx(api_key=self.api_key or "unused-for-verification", public_key=self.public_key)

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> WebhookCall:
        text = body.decode("utf-8", "replace")
        if self.verify_signatures:
            self._check_signature(text, headers)
        params = dict(parse_qsl(text, keep_blank_values=True))
        return WebhookCall(
            call_id=params.get("CallSid"), from_number=params.get("From"), to_number=params.get("To")
        )

    def _check_signature(self, payload: str, headers: Mapping[str, str]) -> None:
        if not headers.get("telnyx-signature-ed25519"):
            raise WebhookRefused("no telnyx-signature-ed25519 header")
        if not self.public_key:
            raise WebhookRefused("TELNYX_PUBLIC_KEY is not set, so the signature cannot be checked")
        try:
            from telnyx import Telnyx
        except ImportError:
            raise WebhookRefused(
                "checking signatures needs the telnyx SDK: pip install 'voxloop[telephony]'"
            ) from None
        client = Telnyx(api_key=self.api_key or "unused-for-verification", public_key=self.public_key)
        try:
            client.webhooks.unwrap(payload, headers=dict(headers))
        except json.JSONDecodeError:
            pass  # verified: unwrap checks the signature first, then reads JSON, and TeXML posts a form
        except Exception as exc:
            raise WebhookRefused(f"the Telnyx signature does not verify: {exc}") from None

    def markup(self, stream_url: str, parameters: Mapping[str, str]) -> Markup:
        return Markup(texml_connect_stream(stream_url, parameters), "application/xml")

    def serializer(self) -> TelnyxSerializer:
        return TelnyxSerializer()

    async def hang_up(self, call: CallInfo) -> None:
        client = self._client()
        try:
            await client.calls.actions.hangup(call.call_id)
        finally:
            await client.close()

    def _client(self) -> Any:
        if self._rest_client is not None:
            return self._rest_client()
        if not self.api_key:
            raise RuntimeError("hanging up needs TELNYX_API_KEY")
        from telnyx import AsyncTelnyx

        return AsyncTelnyx(api_key=self.api_key)
