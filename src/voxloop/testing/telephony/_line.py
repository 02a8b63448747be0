"""The provider's playout of the bot's audio, at real time, as a phone line plays it.

Audio the server sends is appended to a buffer; a 20 ms tick (on fixed deadlines of the event
loop's clock, so it does not drift) takes one frame off it, as the provider's jitter buffer feeds
the call. A mark is acknowledged only once every byte sent before it has been played. ``clear``
empties the buffer and gives back the marks still pending, as the providers document.

It keeps what a test needs to judge the line: ``played`` (the bot's PCM16 as the caller heard it),
``starved_frames`` (ticks with nothing to play while the bot was mid-reply, that is choppy audio),
``max_buffered_secs`` (how far ahead the server ran), and ``sent_bytes`` / ``played_bytes``. For
servers that send no marks, and for timing: ``arrivals`` (when each media message came, and the bytes
received up to it) and ``pauses`` (every run of empty ticks between two played frames: when it
ended and how many ticks it lasted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["PlayoutLine"]

FRAME_SECS = 0.02


@dataclass
class _PendingMark:
    name: str
    position: int  # bytes of audio received before it


class PlayoutLine:
    """``bytes_per_sec``: wire bytes per second (8000 for G.711, 32000 for 16 kHz L16).
    ``decode``: wire bytes to PCM16 at ``pcm_rate``. ``ack(name)``: sends the provider's mark
    acknowledgement."""

    def __init__(
        self,
        bytes_per_sec: int,
        decode: Callable[[bytes], bytes],
        ack: Callable[[str], Awaitable[None]],
        *,
        pcm_rate: int = 8000,
    ) -> None:
        self.pcm_rate = pcm_rate  # the rate of the decoded audio in ``played``
        self._frame_bytes = int(bytes_per_sec * FRAME_SECS)
        self._bytes_per_sec = bytes_per_sec
        self._decode = decode
        self._ack = ack
        self._buffer = bytearray()
        self._marks: list[_PendingMark] = []
        self.sent_bytes = 0
        self.played_bytes = 0
        self.played = bytearray()
        self.played_marks: list[str] = []
        self.cleared_marks: list[str] = []
        self.clears = 0
        self.played_at_clears: list[int] = []  # bytes played when each clear came
        self.starved_frames = 0
        self.max_buffered_secs = 0.0
        self.arrivals: list[tuple[float, int]] = []  # (event-loop time, sent_bytes after the message)
        # (event-loop time it ended, empty ticks) of each pause between two played frames
        self.pauses: list[tuple[float, int]] = []
        self.ticks = 0  # ticks run so far
        self._empty_run = 0
        self.first_played_at: float | None = None  # event-loop time of the first and last frame played
        self.last_played_at: float | None = None
        self.progress = asyncio.Condition()
        self.stalled = False  # while True nothing plays (a stalled network or provider)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="playout-line")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def pending_marks(self) -> int:
        """Marks received whose audio has not played yet."""
        return len(self._marks)

    @property
    def buffered_secs(self) -> float:
        return len(self._buffer) / self._bytes_per_sec

    def receive_audio(self, data: bytes) -> None:
        self._buffer += data
        self.sent_bytes += len(data)
        self.arrivals.append((asyncio.get_running_loop().time(), self.sent_bytes))
        self.max_buffered_secs = max(self.max_buffered_secs, self.buffered_secs)

    async def receive_mark(self, name: str) -> None:
        self._marks.append(_PendingMark(name, self.sent_bytes))
        await self._ack_played()

    async def receive_clear(self) -> None:
        self.clears += 1
        self.played_at_clears.append(self.played_bytes)
        self._buffer.clear()
        self.played_bytes = self.sent_bytes  # what was dropped will never play
        marks, self._marks = self._marks, []
        for mark in marks:
            self.cleared_marks.append(mark.name)
            await self._ack(mark.name)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Until ``predicate()`` holds, checked at every tick of the line."""
        async with asyncio.timeout(timeout), self.progress:
            await self.progress.wait_for(predicate)

    def voiced_secs(self, threshold: int = 500) -> float:
        """Seconds of played audio louder than ``threshold`` (20 ms windows)."""
        samples = np.frombuffer(bytes(self.played), dtype="<i2")
        window = int(self.pcm_rate * FRAME_SECS)
        usable = len(samples) - len(samples) % window
        if usable == 0:
            return 0.0
        peaks = np.abs(samples[:usable].reshape(-1, window).astype(np.int32)).max(axis=1)
        return float((peaks > threshold).sum()) * FRAME_SECS

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += FRAME_SECS
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            self.ticks += 1
            if self.stalled:
                async with self.progress:
                    self.progress.notify_all()
                continue
            frame = bytes(self._buffer[: self._frame_bytes])
            del self._buffer[: self._frame_bytes]
            if frame:
                now = loop.time()
                if self._empty_run and self.first_played_at is not None:
                    self.pauses.append((now, self._empty_run))
                self._empty_run = 0
                self.played_bytes += len(frame)
                self.played += self._decode(frame)
                self.last_played_at = now
                if self.first_played_at is None:
                    self.first_played_at = self.last_played_at
            else:
                self._empty_run += 1
                if self._marks:
                    self.starved_frames += 1  # a reply is under way (marks pending) and nothing to play
            await self._ack_played()
            async with self.progress:
                self.progress.notify_all()

    async def _ack_played(self) -> None:
        while self._marks and self._marks[0].position <= self.played_bytes:
            mark = self._marks.pop(0)
            self.played_marks.append(mark.name)
            await self._ack(mark.name)
