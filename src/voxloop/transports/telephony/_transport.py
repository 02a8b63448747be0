"""The telephony transport: one phone call's media-stream WebSocket, whichever provider sends it.

The provider's serializer decodes its events; this module does what every provider shares:

- caller audio (8 kHz G.711 or L16) goes into the normal input path, which resamples it;
- the bot's audio is paced by the output base (``TELEPHONY_PARAMS``: 40 ms chunks, 160 ms ahead of
  playback, so the provider's jitter buffer always has a few chunks and never minutes);
- **context == heard**: after each chunk a mark is sent, and whatever the output pushes on behind
  that chunk (the spoken text, the played audio, the end of the reply) is held until the provider
  acknowledges the mark, that is, until the caller has heard the chunk. The assistant context and
  RTVI ``bot-output`` sit after the output, so they follow what was played on the line, not what
  was sent. On barge-in the provider's ``clear`` goes out at once and the held text is dropped
  (marks the provider returns for cleared audio are ignored); providers without marks (Vonage)
  fall back to the output's clock;
- DTMF digits become ``InputDTMFFrame``s, as RTVI ``dtmf`` does;
- the provider's ``stop`` (or the socket closing) ends the session; :meth:`close` from our side
  hangs up through the provider's REST API when the call is still up.

Bad input (malformed JSON, unknown events, bad payloads) is logged and skipped: the call goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ...frames import Frame, InputDTMFFrame, KeypadEntry, StartFrame
from ...pipeline import DOWNSTREAM, UPSTREAM, EventSource, FrameDirection
from ...rtvi.protocol import PROTOCOL_VERSION
from ..base_input import BaseInputTransport
from ..base_output import BaseOutputTransport
from ..params import TransportParams
from ..serializers.base import SerializationError
from ..transport import Transport
from ._provider import CallInfo
from ._wire import CallAudio, CallDtmf, CallStarted, CallStopped, MarkPlayed, TelephonySerializer

__all__ = ["HangUp", "TelephonyTransport", "telephony_params"]

logger = logging.getLogger("voxloop.telephony")

#: Ends a call through the provider's REST API.
HangUp = Callable[[CallInfo], Awaitable[None]]

#: How long a reply may wait at its end for marks that do not come (a provider that lost them).
MARK_TIMEOUT_SECS = 2.0

_DIGITS = {entry.value: entry for entry in KeypadEntry}
_READY = {"version": PROTOCOL_VERSION, "about": {"library": "voxloop-telephony"}}


def telephony_params(sample_rate: int = 8000, chunk_ms: int = 40) -> TransportParams:
    """The output paced for a provider's jitter buffer: 40 ms chunks sent 160 ms ahead (a provider
    that wants longer chunks, Exotel's 100 ms, gets them sent so that the line never holds more
    than 200 ms either)."""
    return TransportParams(
        audio_out_sample_rate=sample_rate, audio_out_chunk_ms=chunk_ms, audio_out_lead_ms=200 - chunk_ms
    )


class TelephonyTransport(EventSource, Transport):
    """One call on one accepted provider WebSocket; call :meth:`wait_for_start` before the pipeline.

    Events: ``on_client_connected()``, ``on_client_disconnected()``.
    """

    def __init__(
        self,
        websocket: WebSocket,
        serializer: TelephonySerializer,
        params: TransportParams | None = None,
        *,
        hang_up: HangUp | None = None,
    ) -> None:
        super().__init__()
        self.websocket = websocket
        self.serializer = serializer
        self.params = params or telephony_params(serializer.sample_rate, serializer.chunk_ms)
        self.call: CallInfo | None = None
        self.disconnected = asyncio.Event()
        self._hang_up = hang_up
        self._call_over = False  # the provider said stop, or the call was hung up
        self._send_lock = asyncio.Lock()
        self._input = _TelephonyInput(self)
        self._output = _TelephonyOutput(self)
        self._register_event_handler("on_client_connected")
        self._register_event_handler("on_client_disconnected")

    def input(self) -> BaseInputTransport:
        return self._input

    def output(self) -> BaseOutputTransport:
        return self._output

    async def wait_for_start(self, timeout: float = 10.0) -> CallStarted:
        """Reads the stream up to its ``start`` event (what comes before it is skipped).

        Raises TimeoutError, or ConnectionError when the socket closes first.
        """
        async with asyncio.timeout(timeout):
            while True:
                event = await self._next_event()
                if isinstance(event, CallStarted):
                    self.call = CallInfo(
                        provider=self.serializer.provider,
                        call_id=event.call_id,
                        stream_id=event.stream_id,
                        from_number=event.from_number,
                        to_number=event.to_number,
                        custom_parameters=dict(event.custom_parameters),
                    )
                    return event
                if isinstance(event, CallStopped):
                    raise ConnectionError("the stream stopped before it started")
                if event is not None:
                    logger.warning("%s: %s before the stream's start; skipped", self, type(event).__name__)

    async def _next_event(self) -> CallAudio | CallDtmf | CallStarted | CallStopped | MarkPlayed | None:
        """The next event on the socket (None: nothing for the pipeline, or bad input, logged)."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise ConnectionError("the provider closed the media socket")
        data = message.get("bytes")
        if data is None:
            data = message.get("text", "")
        try:
            return self.serializer.parse(data)
        except SerializationError as exc:
            logger.warning("%s: dropped a bad %s message: %s", self, self.serializer.provider, exc)
            return None

    def __repr__(self) -> str:
        call = self.call.call_id if self.call is not None else "?"
        return f"{self.serializer.provider}-call({call})"

    async def send_data(self, data: bytes | str | None) -> None:
        """Send one message to the provider; once the call is gone, dropped quietly."""
        if data is None or self.disconnected.is_set():
            return
        try:
            async with self._send_lock:
                if isinstance(data, str):
                    await self.websocket.send_text(data)
                else:
                    await self.websocket.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            logger.debug("%s: send failed (%s); the call is gone", self, exc)
            await self._mark_disconnected()

    async def close(self) -> None:
        """End the call: hang up through the provider's API (if it is still up), close the socket."""
        if not self._call_over and self._hang_up is not None and self.call is not None:
            self._call_over = True
            try:
                await self._hang_up(self.call)
                logger.info("%s: hung up", self)
            except Exception:
                logger.exception("%s: hanging up through the provider's API failed", self)
        if self.websocket.client_state is WebSocketState.CONNECTED:
            try:
                await self.websocket.close()
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass  # the provider already closed it
        await self._mark_disconnected()
        await self._finish_event_handlers()

    async def _mark_disconnected(self) -> None:
        if not self.disconnected.is_set():
            self.disconnected.set()
            await self._output.line_gone()
            await self._call_event_handler("on_client_disconnected")


class _TelephonyInput(BaseInputTransport):
    def __init__(self, transport: TelephonyTransport) -> None:
        super().__init__(transport.params, name=f"{transport.serializer.provider}-input")
        self._transport = transport
        self._reader: asyncio.Task[None] | None = None

    async def start(self, frame: StartFrame) -> None:
        self._reader = asyncio.create_task(self._read(), name=f"{self}::read")
        await self._transport._call_event_handler("on_client_connected")
        # The line stands in for the RTVI client, and a call is ready once its stream started: the
        # bot's on_client_ready (a greeting, say) runs at once instead of after the RTVI timeout.
        await self.push_message({"label": "rtvi-ai", "type": "client-ready", "id": "call", "data": _READY})

    async def stop(self) -> None:
        """At End the reader goes on (audio and keys are no longer pushed): the marks of the reply
        still playing must reach the output, which waits for them before it lets the End pass."""

    async def cleanup(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.wait({reader})
        await super().cleanup()

    async def _read(self) -> None:
        transport = self._transport
        rate = transport.serializer.sample_rate
        try:
            while True:
                event = await transport._next_event()
                if isinstance(event, CallAudio):
                    await self.push_audio(event.pcm, rate, 1)
                elif isinstance(event, MarkPlayed):
                    await transport._output.mark_played(event.name)
                elif isinstance(event, CallDtmf):
                    await self._dtmf(event.digit)
                elif isinstance(event, CallStopped):
                    logger.info("%s: the provider ended the stream", transport)
                    transport._call_over = True
                    break
                elif isinstance(event, CallStarted):
                    logger.warning("%s: a second start event; ignored", transport)
        except (ConnectionError, WebSocketDisconnect, RuntimeError, OSError) as exc:
            if transport.serializer.ends_with_stop:
                logger.warning(
                    "%s: the media socket dropped without a stop (%s); the call is over", transport, exc
                )
            else:  # this provider ends a stream by closing it
                logger.info("%s: the provider closed the stream; the call is over", transport)
            transport._call_over = True
        await transport._mark_disconnected()

    async def _dtmf(self, digit: str) -> None:
        entry = _DIGITS.get(digit)
        if entry is None:
            logger.warning("%s: DTMF digit %r is not a keypad key; dropped", self._transport, digit)
            return
        if self._running:
            await self.push_frame(InputDTMFFrame(button=entry))


class _TelephonyOutput(BaseOutputTransport):
    """Sends paced audio with a mark after each chunk; holds what follows a chunk until its mark is back."""

    def __init__(self, transport: TelephonyTransport) -> None:
        super().__init__(transport.params, name=f"{transport.serializer.provider}-output")
        self._transport = transport
        self._marks = transport.serializer.has_marks
        self._mark_count = 0
        self._unmarked = False  # audio was written since the last mark
        self._held: deque[tuple[str, list[Frame]]] = deque()  # (mark, frames behind it), in send order
        self._all_heard = asyncio.Event()
        self._all_heard.set()

    @property
    def unheard_marks(self) -> int:
        """Marks sent whose audio the provider has not yet reported played."""
        return len(self._held)

    async def write_audio(self, audio: bytes, sample_rate: int) -> None:
        for message in self._transport.serializer.audio(audio):
            await self._transport.send_data(message)
        self._unmarked = self._marks and not self._transport.disconnected.is_set()

    async def send_message(self, message: Any) -> None:
        """A phone line carries no RTVI messages: they are dropped."""

    async def send_interruption(self) -> None:
        await self._transport.send_data(self._transport.serializer.clear())
        self._unmarked = False
        await self._release_unheard()

    async def push_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        if direction is UPSTREAM or frame.system or not self._marks:
            await super().push_frame(frame, direction)
        elif self._unmarked:
            self._unmarked = False
            self._mark_count += 1
            name = str(self._mark_count)
            self._held.append((name, [frame]))
            self._all_heard.clear()
            await self._transport.send_data(self._transport.serializer.mark(name))
        elif self._held:
            self._held[-1][1].append(frame)
        else:
            await super().push_frame(frame, direction)

    async def mark_played(self, name: str) -> None:
        """The provider played up to mark ``name``: what was held behind it goes on, in order."""
        if not any(held == name for held, _ in self._held):
            logger.debug("%s: mark %r is not pending (cleared audio, or not ours)", self, name)
            return
        while self._held:
            held, frames = self._held[0]
            while frames:  # frames may still be added to the last group while these are pushed
                await super().push_frame(frames.pop(0), DOWNSTREAM)
            self._held.popleft()
            if held == name:
                break
        if not self._held:
            self._all_heard.set()

    async def wait_heard(self) -> None:
        if self._all_heard.is_set():
            return
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as the
            # event is set, and the speaking watcher, cancelled at End, would then never finish.
            async with asyncio.timeout(MARK_TIMEOUT_SECS):
                await self._all_heard.wait()
        except TimeoutError:
            logger.warning(
                "%s: %d mark(s) not acknowledged; their text counts as unheard", self, len(self._held)
            )
            await self._release_unheard()

    async def line_gone(self) -> None:
        """Nothing more will be played: the held text was not heard; the rest goes on."""
        self._marks = False
        self._unmarked = False
        await self._release_unheard()

    async def _release_unheard(self) -> None:
        """Drops the held frames an interruption drops (text, audio); pushes the ones it keeps."""
        held, self._held = self._held, deque()
        self._all_heard.set()
        for _, frames in held:
            for frame in frames:
                if frame.uninterruptible:
                    await super().push_frame(frame, DOWNSTREAM)
