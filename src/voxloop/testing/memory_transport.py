"""MemoryTransport: a bot's whole pipeline in-process with a scripted client; no port, no server.

What httpx's ``MockTransport`` and Starlette's ``TestClient`` are to web apps: the bot runs exactly as
it would behind a socket (the same :class:`~voxloop.transports.BaseInputTransport` and
:class:`~voxloop.transports.BaseOutputTransport`, so audio conversion, pacing, speaking state,
interruptions and RTVI behave as in production), and the other end is a :class:`MemoryClient`::

    async with MemoryTransport().run_bot(echo.create_bot) as client:
        await client.ready()                        # client-ready -> bot-ready
        await client.stream_audio(pcm, sample_rate=16000)
        await client.wait_for_audio(24000)          # bytes of bot audio (24 kHz mono PCM16)

or put ``transport.input()`` and ``transport.output()`` in a pipeline of your own (with a
``FakeClock`` on its task to drive pacing and timeouts). Messages cross as JSON, as on a real wire: a
bot that sends something JSON cannot carry is caught here. Every RTVI message the client receives is
checked against :mod:`voxloop.rtvi.messages`; a violation is raised from the client's next wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..bots import BotFactory, SessionInfo, create_task
from ..frames import Frame, StartFrame
from ..pipeline import DOWNSTREAM, EventSource, FrameDirection
from ..rtvi.messages import validate_server_message
from ..transports import (
    CLIENT_CONNECTED,
    CLIENT_DISCONNECTED,
    BaseInputTransport,
    BaseOutputTransport,
    Transport,
    TransportParams,
)
from ._client_base import ClientBase, rtvi_message

__all__ = ["MemoryClient", "MemoryTransport"]

logger = logging.getLogger("voxloop.testing")


class MemoryTransport(EventSource, Transport):
    """One session whose client is :attr:`client`, in the same process.

    ``record_frames``: keep every frame the output pushes on downstream in :attr:`output_frames`
    (the played audio chunks and everything else, in order). Events: ``on_client_connected`` when
    the pipeline starts, ``on_client_disconnected`` when the client leaves or :meth:`close` is called.
    """

    def __init__(
        self, params: TransportParams | None = None, *, version: str = "2.1.0", record_frames: bool = True
    ) -> None:
        super().__init__()
        self.params = params or TransportParams()
        self.record_frames = record_frames
        self.output_frames: list[Frame] = []
        self.started = asyncio.Event()  # the pipeline runs (the input has started)
        self.disconnected = asyncio.Event()
        self.client = MemoryClient(self, version=version)
        self._input = _MemoryInput(self)
        self._output = _MemoryOutput(self)
        self._ran = False
        self._register_event_handler(CLIENT_CONNECTED)
        self._register_event_handler(CLIENT_DISCONNECTED)

    def input(self) -> BaseInputTransport:
        return self._input

    def output(self) -> BaseOutputTransport:
        return self._output

    async def close(self) -> None:
        """The server ends the session: the client sees ``closed``; handlers are finished."""
        await self._mark_disconnected()
        await self._finish_event_handlers()

    @asynccontextmanager
    async def run_bot(
        self, factory: BotFactory, session: SessionInfo | None = None
    ) -> AsyncIterator[MemoryClient]:
        """Run ``create_bot(self, session)`` as the server would; yields the client once it runs.

        As on the server, the client leaving (:meth:`MemoryClient.disconnect`) cancels the task.
        Leaving the block normally ends the task gracefully (queued audio plays out, in real time);
        leaving it with an exception cancels it. Either way the task has finished and the transport
        is closed when the block is left.
        """
        if self._ran:
            raise RuntimeError("a MemoryTransport carries one session: make a new one")
        self._ran = True
        task = await create_task(
            factory, self, session or SessionInfo(session_id="memory", transport="memory")
        )

        def client_left(transport: MemoryTransport) -> None:
            task.request_cancel("the client left")

        self.add_event_handler(CLIENT_DISCONNECTED, client_left)
        runner = asyncio.create_task(task.run(), name=f"memory-transport::{task}")
        succeeded = False
        try:
            started = asyncio.ensure_future(task.wait_until_started())
            await asyncio.wait({started, runner}, return_when=asyncio.FIRST_COMPLETED)
            if not started.done():
                started.cancel()
                await runner  # raises what stopped the task from starting
                raise RuntimeError("the bot's task ended before it started")
            yield self.client
            succeeded = True
        finally:
            if not succeeded:
                await task.cancel("the test failed")
            elif not task.has_finished():
                await task.stop_when_done()
            await runner
            await self.close()

    async def _mark_disconnected(self) -> None:
        if not self.disconnected.is_set():
            self.disconnected.set()
            await self.client._notify_waiters()
            await self._call_event_handler(CLIENT_DISCONNECTED)

    async def _started(self) -> None:
        self.started.set()
        await self.client._notify_waiters()
        if not self.disconnected.is_set():
            await self._call_event_handler(CLIENT_CONNECTED)


class MemoryClient(ClientBase):
    """The scripted client at the other end of a :class:`MemoryTransport`.

    Its API follows :class:`~voxloop.testing.RTVIClient` (so a test can swap one for the other):
    ``messages`` (every server message, in order), ``audio`` (all bot PCM16 mono, at
    ``audio_sample_rate``), ``audio_writes`` ((clock time in ns, byte count) per chunk the output
    wrote: the pacing), ``interruptions`` (times the output told the client to stop playing),
    ``protocol_errors``, and ``closed`` once the session is over. Sends wait until the pipeline runs.
    """

    def __init__(self, transport: MemoryTransport, *, version: str = "2.1.0") -> None:
        super().__init__()
        self.transport = transport
        self.version = version
        self.audio_writes: list[tuple[int, int]] = []
        #: Set once the client has left or the server closed the session.
        self.closed = transport.disconnected

    # -- sending --------------------------------------------------------------------------------

    async def send(self, message: Any, *, timeout: float = 10) -> None:
        """Send any client message (a dict, as the client's JSON would decode), unchecked."""
        wire = json.loads(json.dumps(message))  # what crosses a wire is JSON, nothing else
        input_ = await self._connected_input(timeout)
        await input_.push_message(wire)

    async def send_message(self, type: str, data: Any = None, *, id: str | None = None) -> str:
        """Send an RTVI message; returns its id."""
        message = rtvi_message(type, data, id)
        await self.send(message)
        return str(message["id"])

    async def ready(self, version: str | None = None, timeout: float = 10) -> dict[str, Any]:
        """Send ``client-ready`` and wait for ``bot-ready``."""
        about = {"library": "voxloop-memory-client", "platform": "python"}
        await self.send_message("client-ready", {"version": version or self.version, "about": about})
        return await self.wait_for_message("bot-ready", timeout=timeout)

    async def stream_audio(
        self,
        pcm: bytes,
        *,
        sample_rate: int = 16000,
        num_channels: int = 1,
        chunk_ms: int = 20,
        realtime: bool = True,
    ) -> None:
        """Speak PCM16 into the input in ``chunk_ms`` chunks.

        With ``realtime`` chunk n goes in at start + n * chunk duration on the pipeline's clock: real
        time, or a ``FakeClock`` the test advances (then run this in a task and advance the clock).
        Without, everything goes in at once.
        """
        frame_bytes = 2 * num_channels
        if len(pcm) % frame_bytes or chunk_ms <= 0:
            raise ValueError(f"PCM must hold whole {num_channels}-channel 16-bit frames; chunk_ms > 0")
        input_ = await self._connected_input(10)
        chunk_bytes = sample_rate * chunk_ms // 1000 * frame_bytes
        clock = input_.clock
        start = clock.now_ns()
        for n, offset in enumerate(range(0, len(pcm), chunk_bytes)):
            if realtime and (delay := start + n * chunk_ms * 1_000_000 - clock.now_ns()) > 0:
                await clock.sleep(delay / 1e9)  # pacing a live microphone, not synchronisation
            if self.closed.is_set():
                raise ConnectionError("the session is closed")
            await input_.push_audio(pcm[offset : offset + chunk_bytes], sample_rate, num_channels)

    async def disconnect(self) -> None:
        """The client leaves (``on_client_disconnected`` fires; the server would cancel the bot)."""
        await self.transport._mark_disconnected()

    wait_for_message = ClientBase.wait_for  # the name MemoryClient had first

    async def _connected_input(self, timeout: float) -> _MemoryInput:
        if self.closed.is_set():
            raise ConnectionError("the session is closed")
        if not self.transport.started.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self.transport.started.wait()
            except TimeoutError:
                raise TimeoutError(f"the pipeline did not start within {timeout} s") from None
        return self.transport._input

    # -- what the output delivers ---------------------------------------------------------------

    async def _receive_message(self, message: dict[str, Any]) -> None:
        if isinstance(message, dict) and message.get("label") == "rtvi-ai":
            try:
                validate_server_message(message)
            except ValueError as exc:
                self.protocol_errors.append(str(exc))
        self.messages.append(message)
        await self._notify_waiters()

    async def _receive_audio(self, audio: bytes, sample_rate: int, at_ns: int) -> None:
        self.audio_sample_rate = sample_rate
        self.audio += audio
        self.audio_writes.append((at_ns, len(audio)))
        await self._notify_waiters()

    async def _receive_interruption(self) -> None:
        self.interruptions += 1
        await self._notify_waiters()


class _MemoryInput(BaseInputTransport):
    def __init__(self, transport: MemoryTransport) -> None:
        super().__init__(transport.params, name="memory-input")
        self._transport = transport

    async def start(self, frame: StartFrame) -> None:
        await self._transport._started()


class _MemoryOutput(BaseOutputTransport):
    def __init__(self, transport: MemoryTransport) -> None:
        super().__init__(transport.params, name="memory-output")
        self._transport = transport
        self._client = transport.client

    async def write_audio(self, audio: bytes, sample_rate: int) -> None:
        if not self._transport.disconnected.is_set():
            await self._client._receive_audio(audio, sample_rate, self.clock.now_ns())

    async def send_message(self, message: Any) -> None:
        try:
            wire = json.loads(json.dumps(message))
        except (TypeError, ValueError) as exc:
            logger.error("%s: cannot send message %r: %s", self, message, exc)
            return
        if not self._transport.disconnected.is_set():
            await self._client._receive_message(wire)

    async def send_interruption(self) -> None:
        if not self._transport.disconnected.is_set():
            await self._client._receive_interruption()

    async def push_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        if direction is DOWNSTREAM and self._transport.record_frames:
            self._transport.output_frames.append(frame)
        await super().push_frame(frame, direction)
