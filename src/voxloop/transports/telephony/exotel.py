"""Exotel: the Voicebot applet's bidirectional stream (AgentStream), its dynamic URL, Basic auth.

Facts only, each with its source: [P] developer.exotel.com/docs/agentstream/websocket-protocol;
[A] developer.exotel.com/docs/agentstream/stream-voicebot-applet; [V] docs.exotel.com/
exotel-agentstream/voicebot-applet; [M] docs.exotel.com/exotel-agentstream/more; [R] the
exotel/Agent-Stream repository (its docs and helpers); [E] exotel/Agent-Stream-echobot.

The stream, from Exotel [P]: ``connected``; ``start`` (top-level ``stream_sid`` and
``sequence_number``; ``start.stream_sid``, ``call_sid``, ``account_sid``, ``from``, ``to``,
``custom_parameters``, the stream URL's query [A], and ``media_format``: ``encoding``
``audio/x-raw``, ``sample_rate`` ``"8000"``, ``bit_rate`` ``"16"``, all strings); ``media``
(``media.chunk``, ``media.timestamp``, ``media.payload``: base64 of 16-bit little-endian mono PCM,
"raw/slin" [A]); ``dtmf`` (``dtmf.digit``, ``dtmf.duration``); ``mark`` (``mark.name``, "sent when
audio you previously sent has finished playing"); ``stop`` (``stop.reason``, read by [E]; its
values are not on [P]). To Exotel [P][E]: ``media``, ``mark`` and ``clear``, each with the
``stream_sid``. Every audio message we send must be a whole number of 320-byte blocks (20 ms at
8 kHz) and at least "3.2 KB (100ms of data)" [A]: the two halves of that do not agree at 8 kHz
16-bit (100 ms is 1.6 KB; 3.2 KB is 200 ms), so the output writes 100 ms chunks (``chunk_ms``)
and this serializer holds back what a chunk has beyond whole 320-byte blocks (it goes out with the
next one; a clear drops it). Whether Exotel acknowledges the marks of audio a clear drops is not
documented: the transport ignores them either way.

The dynamic URL: the applet's URL may be an https endpoint that returns the ws(s) URL [V], as
``{"url": "wss://..."}`` [R]; ``GET``/``POST /exotel`` answers it with the one-time token in the
query. Exotel signs nothing; it offers HTTP Basic auth (credentials in the configured URL, sent as
``Authorization: Basic base64(key:token)``, documented for the wss URL [A][V]) or an allow-list
of its IP ranges (on request from Exotel [A]). The webhook requires Basic auth with
``EXOTEL_API_KEY`` and ``EXOTEL_API_TOKEN``, so only the party that holds them (Exotel, with the
URL you configured) obtains a stream token, and the media socket requires that token. Not
confirmed by Exotel's docs: that the applet sends Basic credentials for an https dynamic URL too.
Hanging up: Exotel documents no REST call that ends a Voicebot call; "disconnect the websocket from
your bot when the conversation is complete to allow the call flow to proceed to the next applet"
[M], so closing the stream (a Hangup applet next in the flow) is the hang-up.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..serializers.base import SerializationError
from ._json_stream import JsonStreamSerializer, check_encoding, same_pcm
from ._provider import TOKEN_PARAMETER, CallInfo, ProviderBase, WebhookCall, WebhookRefused
from ._wire import CallStarted, section, string_map

__all__ = ["ExotelProvider", "ExotelSerializer", "exotel_stream_answer"]

logger = logging.getLogger("voxloop.telephony")

RATE = 8000
#: Exotel: "Must be a multiple of 320 bytes" (Stream and Voicebot Applet, chunk size requirements).
BLOCK_BYTES = 320
#: Exotel: minimum chunk "3.2 KB (100ms of data)", maximum 100 KB (same table). At 8 kHz 16-bit
#: 100 ms is 1.6 KB: the duration is kept (longer chunks would slow a barge-in's clear).
CHUNK_MS = 100


def _either(obj: dict[str, Any], key: str, camel: str) -> Any:
    """``obj[key]``, or its camelCase spelling: Exotel's protocol page spells the fields snake_case,
    while its Agent-Stream notes say names "can vary slightly by applet / Connect path" and show
    ``streamSid`` / ``callSid``. Both are read; the snake_case one wins."""
    value = obj.get(key)
    return obj.get(camel) if value is None else value


def _required(obj: dict[str, Any], key: str, camel: str) -> str:
    value = _either(obj, key, camel)
    if not isinstance(value, str) or not value:
        raise SerializationError(f"start without a {key}")
    return value


class ExotelSerializer(JsonStreamSerializer):
    """One Exotel Voicebot stream (8 kHz 16-bit PCM, "slin"); Exotel sends ``stop`` (reason
    ``stopped`` or ``callended``) before it closes."""

    provider = "exotel"
    label = "Exotel"
    sample_bytes = 2
    chunk_ms = CHUNK_MS

    def __init__(self) -> None:
        super().__init__((same_pcm, same_pcm))
        self._chunk = 0
        self._sent_ms = 0
        self._pending = b""  # bot audio short of a whole 320-byte block

    def _start(self, message: dict[str, Any]) -> CallStarted:
        start = section(message, "start")
        media_format = _either(start, "media_format", "mediaFormat")
        check_encoding("Exotel", media_format, "encoding", "audio/x-raw")
        if isinstance(media_format, dict):
            # The protocol page gives the rate as a string ("8000"); a number is read the same.
            rate = str(_either(media_format, "sample_rate", "sampleRate") or RATE)
            if rate != str(RATE):
                raise SerializationError(
                    f"unsupported Exotel sample rate {rate} Hz: leave the applet's sample-rate at 8000"
                )
        self.stream_id = _required(start, "stream_sid", "streamSid")
        return CallStarted(
            call_id=_required(start, "call_sid", "callSid"),
            stream_id=self.stream_id,
            custom_parameters=string_map(_either(start, "custom_parameters", "customParameters")),
            from_number=_text(start.get("from")),
            to_number=_text(start.get("to")),
        )

    def audio(self, pcm: bytes) -> list[bytes | str]:
        data = self._pending + pcm
        whole = len(data) - len(data) % BLOCK_BYTES
        self._pending = data[whole:]
        if not whole:
            return []
        self._chunk += 1
        messages = super().audio(data[:whole])
        self._sent_ms += whole * 1000 // (2 * RATE)
        return messages

    def _media_message(self, payload: str) -> dict[str, Any]:
        # The inbound media shape (sequence_number, media.chunk and media.timestamp as strings) is
        # mirrored: Exotel's Agent-Stream helpers note that some streams drop media without them.
        media = {"chunk": str(self._chunk), "timestamp": str(self._sent_ms), "payload": payload}
        return {
            "event": "media",
            "sequence_number": str(self._chunk),
            "stream_sid": self.stream_id,
            "media": media,
        }

    def _mark_message(self, name: str) -> dict[str, Any]:
        return {"event": "mark", "stream_sid": self.stream_id, "mark": {"name": name}}

    def clear(self) -> str:
        self._pending = b""  # what was held back belongs to the audio the clear drops
        return super().clear()

    def _clear_message(self) -> dict[str, Any]:
        return {"event": "clear", "stream_sid": self.stream_id}


def exotel_stream_answer(stream_url: str, parameters: Mapping[str, str]) -> str:
    """The dynamic URL's answer: ``{"url": "wss://...?voxloop_token=..."}``.

    The parameters travel as the stream URL's query: Exotel hands them back as the start's
    ``custom_parameters`` (at most 3 pairs, 256 characters in all, says its applet guide).
    """
    query = urlencode(dict(parameters))
    return json.dumps({"url": f"{stream_url}?{query}" if query else stream_url})


class ExotelProvider(ProviderBase):
    """Exotel's side of ``voxloop run --transport exotel`` (see the module docstring).

    Credentials: ``EXOTEL_API_KEY`` and ``EXOTEL_API_TOKEN`` (arguments win): the Basic-auth pair
    the applet's URL carries (``https://<key>:<token>@host/exotel``). ``verify=False`` accepts a
    webhook without it.
    """

    name = "exotel"
    markup_type = "application/json"
    #: The applet fetches its dynamic URL; Exotel's applets call theirs with GET (query parameters),
    #: and POST is accepted too (form or JSON) as its docs do not say which the Voicebot uses.
    webhook_methods: tuple[str, ...] = ("GET", "POST")

    def __init__(
        self, api_key: str | None = None, api_token: str | None = None, *, verify: bool = True
    ) -> None:
        super().__init__(verify=verify, rest_client=None)  # Exotel's API is never called
        self.api_key = api_key or os.environ.get("EXOTEL_API_KEY")
        self.api_token = api_token or os.environ.get("EXOTEL_API_TOKEN")

    def verify(self, url: str, headers: Mapping[str, str], body: bytes) -> WebhookCall:
        if self.verify_signatures:
            self._check_basic_auth(headers.get("authorization", ""))
        params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        params.update(_body_params(body))
        # The names Exotel's other dynamic URLs (Connect, Passthru) send; the Voicebot's request is
        # not documented, so absent ones are simply None: the stream's start has the call anyway.
        return WebhookCall(
            call_id=_text(params.get("CallSid")),
            from_number=_text(params.get("CallFrom") or params.get("From")),
            to_number=_text(params.get("CallTo") or params.get("To")),
        )

    def _check_basic_auth(self, authorization: str) -> None:
        if not (self.api_key and self.api_token):
            raise WebhookRefused(
                "EXOTEL_API_KEY and EXOTEL_API_TOKEN are not set, so the request cannot be checked"
            )
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise WebhookRefused("no Authorization: Basic header (put <key>:<token>@ in the applet's URL)")
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookRefused("the Authorization header is not base64") from None
        expected = f"{self.api_key}:{self.api_token}".encode()
        if not hmac.compare_digest(given, expected):
            raise WebhookRefused(
                "the Basic credentials are not this account's EXOTEL_API_KEY:EXOTEL_API_TOKEN"
            )

    def _markup(self, stream_url: str, parameters: Mapping[str, str]) -> str:
        # Only the token: the start names the caller and the number itself, and Exotel keeps at most
        # three custom parameters.
        kept = {k: v for k, v in parameters.items() if k == TOKEN_PARAMETER or not k.startswith("voxloop_")}
        return exotel_stream_answer(stream_url, kept)

    def serializer(self) -> ExotelSerializer:
        return ExotelSerializer()

    async def hang_up(self, call: CallInfo) -> None:
        """Nothing to call: the transport closes the stream next, which ends the Voicebot applet
        (Exotel: "disconnect the websocket from your bot when the conversation is complete to allow
        the call flow to proceed to the next applet"); a Hangup applet after it ends the call."""
        logger.debug("exotel call %s: ending the stream ends the Voicebot applet", call.call_id)


def _body_params(body: bytes) -> dict[str, str]:
    if not body:
        return {}
    text = body.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return dict(parse_qsl(text, keep_blank_values=True))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
