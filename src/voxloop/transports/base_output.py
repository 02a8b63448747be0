"""BaseOutputTransport: plays the bot to the client, in real time, and knows when it speaks.

Frames are handled in order on the transport's own task. Audio is cut into chunks and each chunk
is sent ``audio_out_lead_ms`` ahead of the moment it will play, so the client's player always has
a little in hand and never more. Because frames are handled in order, text and messages queued
behind audio leave only once that audio has been sent: the client never reads words before it
hears them. Every played chunk is pushed on downstream, so what follows the output (the assistant
context) sees exactly what was played.

Speaking state: the bot starts speaking when its first chunk is sent and stops once the last one
has played (plus a short grace) with nothing new behind it, or at once when interrupted. Both are
broadcast, so processors before and after the output learn about it.

On interruption everything queued is dropped immediately, the playing frame is cancelled, and
the client is told.

Audio at another rate goes through one streaming resampler, which holds back a few ms (its filter's
lookahead). At ``TTSStoppedFrame`` that tail is flushed and played as the reply's last chunk, so it
never plays at the start of the next reply; an interruption drops it with the rest of the reply.

Pause (``BotOutputPauseFrame``, sent when the user may be barging in but that is not decided yet):
no further chunk is written, nothing is dropped, and the bot does not count as stopped speaking, so
text queued behind the held audio stays queued. ``BotOutputResumeFrame`` continues exactly where it
stopped (the player ran dry, so playback restarts then); an interruption clears the pause along with
the queue; an End clears it too, and what is left plays out before the End goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from ..audio import PCMConverter
from ..frames import (
    BotOutputPauseFrame,
    BotOutputResumeFrame,
    BotSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    StartFrame,
    TTSStoppedFrame,
)
from ..pipeline import DOWNSTREAM, UPSTREAM, FrameDirection, FrameProcessor
from .params import TransportParams

logger = logging.getLogger("voxloop.transports")


class BaseOutputTransport(FrameProcessor):
    """Concrete transports implement :meth:`write_audio` and :meth:`send_message`."""

    plays_output = True

    def __init__(self, params: TransportParams, *, name: str | None = None) -> None:
        super().__init__(name=name, queued=True)
        self.params = params
        self._converter: PCMConverter | None = None
        self._last_audio: OutputAudioRawFrame | None = None  # the frame the converter holds the end of
        self._rate = 24000
        self._chunk_bytes = 1920
        self._lead_ns = params.audio_out_lead_ms * 1_000_000
        self._next_play_ns = 0  # when the audio sent so far will have finished playing
        self._speaking = False
        self._last_tick_ns = 0
        self._audio_sent = asyncio.Event()
        self._paused = False
        self._resumed = asyncio.Event()  # set whenever not paused
        self._resumed.set()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def paused(self) -> bool:
        """True while a ``BotOutputPauseFrame`` holds the bot's audio."""
        return self._paused

    # -- what concrete transports provide ----------------------------------------------------

    async def write_audio(self, audio: bytes, sample_rate: int) -> None:
        """Send one chunk of mono PCM16 to the client."""
        raise NotImplementedError

    async def send_message(self, message: Any) -> None:
        """Send an application (RTVI) message to the client."""
        raise NotImplementedError

    async def send_interruption(self) -> None:
        """Tell the client the bot was interrupted (when the wire has a way to)."""

    async def start(self, frame: StartFrame) -> None:
        """Called once the pipeline starts."""

    async def stop(self) -> None:
        """Called at End (after everything has played) and at Cancel."""

    async def flush_audio(self) -> None:
        """Called at the end of each reply, after its last chunk: a transport that converts the chunks
        again (WebRTC's 48 kHz track) writes out what its own converter still holds."""

    async def wait_heard(self) -> None:
        """Returns once the client has played what was sent. Here that is taken to be when its time
        has passed; a transport whose client acknowledges playback (telephony marks) waits for that,
        so the bot counts as stopped speaking only once the caller has heard it all."""

    # -- frames ------------------------------------------------------------------------------

    async def queue_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        if isinstance(frame, EndFrame) and direction is DOWNSTREAM:
            # The End waits in the queue behind the held audio: the session is ending, so that audio
            # plays out rather than waiting for a resume that may never come.
            self._resume()
        await super().queue_frame(frame, direction)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is UPSTREAM:
            await self.push_frame(frame, direction)
        elif isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._rate = self.params.audio_out_sample_rate or self.audio_out_sample_rate
            self._chunk_bytes = self._rate * self.params.audio_out_chunk_ms // 1000 * 2
            self._converter = PCMConverter(self._rate)
            self._watcher = asyncio.create_task(self._watch_speaking(), name=f"{self}::speaking")
            await self.start(frame)
        elif isinstance(frame, OutputTransportMessageUrgentFrame):
            await self.send_message(frame.message)
        elif isinstance(frame, InterruptionFrame):
            await self._interrupted()
            await self.push_frame(frame, direction)
        elif isinstance(frame, BotOutputPauseFrame):
            self._pause()
            await self.push_frame(frame, direction)
        elif isinstance(frame, BotOutputResumeFrame):
            self._resume()
            await self.push_frame(frame, direction)
        elif isinstance(frame, OutputAudioRawFrame):
            if self.params.audio_out_enabled:
                await self._play(frame)
        elif isinstance(frame, TTSStoppedFrame):
            await self._end_of_reply()  # its last few ms play now, not at the start of the next reply
            await self.push_frame(frame, direction)
        elif isinstance(frame, OutputTransportMessageFrame):
            await self.send_message(frame.message)
            await self.push_frame(frame, direction)
        elif isinstance(frame, EndFrame):
            await self._wait_until_played()
            await self._stop_watching()
            await self.stop()
            await self.push_frame(frame, direction)
        elif isinstance(frame, CancelFrame):
            self._resume()
            await self._stop_watching()
            await self.stop()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        await self._stop_watching()
        await super().cleanup()

    # -- playing -----------------------------------------------------------------------------

    async def _play(self, frame: OutputAudioRawFrame) -> None:
        assert self._converter is not None
        self._last_audio = frame
        await self._send(self._converter.convert(frame.audio, frame.sample_rate, frame.num_channels), frame)

    async def _end_of_reply(self) -> None:
        """Plays what the resampler still holds (its filter's lookahead, about 5 ms), so a reply ends
        with all of its audio and the next one starts clean."""
        frame, self._last_audio = self._last_audio, None
        if self._converter is not None and frame is not None:
            await self._send(self._converter.flush(), frame)
            await self.flush_audio()

    async def _send(self, pcm: bytes, frame: OutputAudioRawFrame) -> None:
        """Writes ``pcm`` (at the output rate) chunk by chunk, each when due, pushing each on."""
        rate, step = self._rate, self._chunk_bytes
        for start in range(0, len(pcm) - len(pcm) % 2, step):
            chunk = pcm[start : start + step]
            now = await self._wait_until_chunk_due()
            if not self._speaking:
                self._speaking = True
                self._last_tick_ns = now
                await self.broadcast_frame(BotStartedSpeakingFrame)
            await self.write_audio(chunk, rate)
            self._next_play_ns += len(chunk) * 1_000_000_000 // (2 * rate)
            self._audio_sent.set()
            await self.push_frame(dataclasses.replace(frame, audio=chunk, sample_rate=rate, num_channels=1))
            if now - self._last_tick_ns >= self.params.bot_speaking_period_secs * 1e9:
                self._last_tick_ns = now
                await self.broadcast_frame(BotSpeakingFrame)

    async def _wait_until_chunk_due(self) -> int:
        """Waits until the next chunk is due (``audio_out_lead_ms`` before it plays) and not paused."""
        clock = self.clock
        while True:
            if self._paused:
                await self._resumed.wait()
            now = clock.now_ns()
            if self._next_play_ns < now:
                self._next_play_ns = now  # the player ran dry: playback restarts now
            send_at = self._next_play_ns - self._lead_ns
            if send_at > now:
                await clock.sleep((send_at - now) / 1e9)
                now = clock.now_ns()
            if not self._paused:  # a pause that came during the wait holds this chunk back
                return now

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self._resumed.clear()

    def _resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        self._resumed.set()
        if self._speaking:
            # Count the stop grace from now: the held audio is written at once, and if none was held
            # the bot stops speaking after the grace, as after any last chunk.
            self._next_play_ns = max(self._next_play_ns, self.clock.now_ns())
            self._audio_sent.set()

    async def _wait_until_played(self) -> None:
        remaining = self._next_play_ns - self.clock.now_ns()
        if remaining > 0:
            await self.clock.sleep(remaining / 1e9)
        await self.wait_heard()
        await self._stopped_speaking()

    async def _interrupted(self) -> None:
        self._paused = False
        self._resumed.set()
        self._next_play_ns = self.clock.now_ns()
        self._last_audio = None
        if self._converter is not None:
            self._converter.reset()  # what it holds belongs to the interrupted reply
        try:
            await self.send_interruption()
        finally:
            await self._stopped_speaking()

    async def _stopped_speaking(self) -> None:
        if self._speaking:
            self._speaking = False
            await self.broadcast_frame(BotStoppedSpeakingFrame)

    async def _watch_speaking(self) -> None:
        """Stops the bot speaking once the last audio has played and nothing followed it.

        Not while paused: held audio is not the end of the reply (a resume wakes this up again).
        """
        grace_ns = int(self.params.bot_stop_grace_secs * 1e9)
        while True:
            await self._audio_sent.wait()
            self._audio_sent.clear()
            while (remaining := self._next_play_ns + grace_ns - self.clock.now_ns()) > 0:
                await self.clock.sleep(remaining / 1e9)
            if not self._audio_sent.is_set() and not self._paused:
                await self.wait_heard()
                if not self._audio_sent.is_set() and not self._paused:  # nothing new meanwhile
                    await self._stopped_speaking()

    async def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
            await asyncio.wait({watcher})
