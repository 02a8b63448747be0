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

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from ..serializers.base import SerializationError
from ._json_stream import CODECS, JsonStreamSerializer
from ._provider import (
    CallInfo,
    ProviderBase,
    WebhookCall,
    WebhookRefused,
    connect_stream_xml,
    form_webhook,
    sdk_missing,
    secret_missing,
)
from ._wire import CallEvent, CallStarted, section, string_map, text_field

__all__ = ["TelnyxProvider", "TelnyxSerializer", "texml_connect_stream"]


class TelnyxSerializer(JsonStreamSerializer):
    """One Telnyx media stream (8 kHz PCMU or PCMA, as its ``start`` says)."""

    provider = "telnyx"
    label = "Telnyx"

    def __init__(self) -> None:
        super().__init__(CODECS["PCMU"])
        self.encoding = "PCMU"

    def _other_event(self, event: object, message: dict[str, Any]) -> CallEvent | None:
        if event == "error":
            raise SerializationError(f"Telnyx reported a stream error: {message.get('payload')!r}")
        return super()._other_event(event, message)

    def _start(self, message: dict[str, Any]) -> CallStarted:
        start = section(message, "start")
        media_format = start.get("media_format")
        encoding = media_format.get("encoding", "PCMU") if isinstance(media_format, dict) else "PCMU"
        if encoding not in CODECS:
            raise SerializationError(f"unsupported Telnyx media encoding {encoding!r} (use PCMU or PCMA)")
        self.encoding = encoding
        self._decode, self._encode = CODECS[encoding]
        self.stream_id = text_field(message, "stream_id")
        return CallStarted(
            call_id=text_field(start, "call_control_id"),
            stream_id=self.stream_id,
            custom_parameters=string_map(start.get("custom_parameters")),
            from_number=start.get("from") if isinstance(start.get("from"), str) else None,
            to_number=start.get("to") if isinstance(start.get("to"), str) else None,
        )

    def _media_message(self, payload: str) -> dict[str, Any]:
        return {"event": "media", "media": {"payload": payload}}

    def _mark_message(self, name: str) -> dict[str, Any]:
        return {"event": "mark", "mark": {"name": name}}

    def _clear_message(self) -> dict[str, Any]:
        return {"event": "clear"}


def texml_connect_stream(stream_url: str, parameters: Mapping[str, str]) -> str:
    """TeXML ``<Connect><Stream url=... bidirectionalMode="rtp">`` with ``<Parameter>``s."""
    attributes = {"url": stream_url, "bidirectionalMode": "rtp", "bidirectionalCodec": "PCMU"}
    return connect_stream_xml(attributes, parameters)


class TelnyxProvider(ProviderBase):
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
        super().__init__(verify=verify, rest_client=rest_client)
        self.public_key = public_key or os.environ.get("TELNYX_PUBLIC_KEY")
        self.api_key = api_key or os.environ.get("TELNYX_API_KEY")
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
        _params, call = form_webhook(body, "CallSid")
        if self.verify_signatures:
            self._check_signature(body.decode("utf-8", "replace"), headers)
        return call

    def _check_signature(self, payload: str, headers: Mapping[str, str]) -> None:
        if not headers.get("telnyx-signature-ed25519"):
            raise WebhookRefused("no telnyx-signature-ed25519 header")
        if not self.public_key:
            raise secret_missing("TELNYX_PUBLIC_KEY")
        try:
            from telnyx import Telnyx
        except ImportError:
            raise sdk_missing("telnyx") from None
        client = Telnyx(api_key=self.api_key or "unused-for-verification", public_key=self.public_key)
        try:
            client.webhooks.unwrap(payload, headers=dict(headers))
        except json.JSONDecodeError:
            pass  # verified: unwrap checks the signature first, then reads JSON, and TeXML posts a form
        except Exception as exc:
            raise WebhookRefused(f"the Telnyx signature does not verify: {exc}") from None

    def _markup(self, stream_url: str, parameters: Mapping[str, str]) -> str:
        return texml_connect_stream(stream_url, parameters)

    def serializer(self) -> TelnyxSerializer:
        return TelnyxSerializer()

    async def hang_up(self, call: CallInfo) -> None:
        client = self._client()
        try:
            await client.calls.actions.hangup(call.call_id)
        finally:
            await client.close()

    def _new_client(self) -> Any:
        if not self.api_key:
            raise RuntimeError("hanging up needs TELNYX_API_KEY")
        from telnyx import AsyncTelnyx

        return AsyncTelnyx(api_key=self.api_key)
