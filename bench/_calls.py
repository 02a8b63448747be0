"""One emulated Twilio call as ``bench/telephony.py`` drives it: the caller, and what each call measures.

The caller (:class:`Caller`) streams 8 kHz audio as Twilio does, 20 ms ``media`` messages on fixed
deadlines without a break (silence between utterances, as a phone line sends), and stamps on
``CLOCK_MONOTONIC`` when each left. The bot's audio plays on the emulator's real-time line, which
stamps each ``media`` message's arrival (``PlayoutLine.arrivals``, the event loop's clock, which is
``CLOCK_MONOTONIC`` too) and keeps every pause between two played frames (``PlayoutLine.pauses``).
On loopback a send stamp is the frame's arrival at the server and an arrival stamp is the bot's
frame leaving it, give or take the kernel's hop (tens of microseconds).

* :func:`echo_call`: the echo bot. Latency of every echoed message: its arrival minus the send time
  of the caller frame holding its last sample (aligned by cross-correlation, so a resampler that
  holds samples back is counted, one that shifts them is not miscounted). A pause on the line
  between two echoed frames is a gap (the caller never stops talking).
* :func:`bot_call`: the default bot. The caller asks a question, keeps streaming silence until the
  reply has played and the line has been quiet for a while, and asks again; each turn's end of
  speech (the send time of the frame holding the question's last loud sample) and first bot audio
  after it are returned for the server's probe events to split. A pause shorter than
  ``REPLY_GAP_TICKS`` is a gap inside a reply (replies are further apart than that).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voxloop.testing.telephony import TwilioEmulator

FRAME_SECS = 0.02
FRAME_SAMPLES = 160  # 20 ms at 8 kHz: one Twilio media message
REPLY_GAP_TICKS = 50  # a pause under 1 s between played frames is a gap inside a reply
SPEECH_LEVEL = 300  # |sample| above this is speech (the WAVs' and espeak's silence is far below)
STALL_MS = 20.0  # a caller frame this late is the load generator's stall (the line shares its event loop)
STALL_BLAME_SECS = 1.0  # a pause starting this soon after a stall is blamed on the load generator


class Caller:
    """The caller's side of one call: 8 kHz PCM16 queued by :meth:`say`, silence when there is none."""

    def __init__(self, call: TwilioEmulator, *, keep_audio: bool = False) -> None:
        self.call = call
        self.sent_ns: list[int] = []  # CLOCK_MONOTONIC when each 20 ms frame had been sent
        self.sent_pcm = bytearray() if keep_audio else None
        self.max_late_ms = 0.0  # how late the load generator sent a frame (a busy generator shows here)
        self.stalls: list[float] = []  # event-loop times the caller sent a frame STALL_MS late or more
        self._queue = bytearray()
        self._waiting: list[tuple[int, asyncio.Future[int]]] = []
        self._dequeued = 0  # frames taken off the queue so far (silence included): the next frame's index

    def say(self, pcm: bytes) -> asyncio.Future[int]:
        """Queue ``pcm``; the future gives the send time (ns) of the frame holding its last loud sample."""
        samples = np.frombuffer(pcm, dtype="<i2")
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SPEECH_LEVEL)
        last = int(loud[-1]) if len(loud) else len(samples) - 1
        start_frame = self._dequeued + len(self._queue) // (2 * FRAME_SAMPLES)
        self._queue += pcm + bytes(-len(pcm) % (2 * FRAME_SAMPLES))  # whole frames only
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((start_frame + last // FRAME_SAMPLES, future))
        return future

    @property
    def idle(self) -> bool:
        return not self._queue

    async def run(self, *, until_empty: bool = False) -> None:
        """Stream at real time (until the queue is empty with ``until_empty``, else until cancelled)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        frame_bytes = 2 * FRAME_SAMPLES
        while not (until_empty and not self._queue):
            frame = bytes(self._queue[:frame_bytes]) or bytes(frame_bytes)
            del self._queue[:frame_bytes]
            self._dequeued += 1
            await self.call.send_audio(frame, 8000, realtime=False)
            self.sent_ns.append(time.monotonic_ns())
            if self.sent_pcm is not None:
                self.sent_pcm += frame
            sent = len(self.sent_ns) - 1
            while self._waiting and self._waiting[0][0] <= sent:
                index, future = self._waiting.pop(0)
                if not future.done():
                    future.set_result(self.sent_ns[index])
            late_ms = (loop.time() - deadline) * 1000
            self.max_late_ms = max(self.max_late_ms, late_ms)
            if late_ms >= STALL_MS:
                self.stalls.append(loop.time())
            deadline += FRAME_SECS
            await asyncio.sleep(max(0.0, deadline - loop.time()))


async def wait_line_quiet(call: TwilioEmulator, quiet_secs: float, timeout: float) -> None:
    """Until nothing is buffered on the line and no bot audio has come for ``quiet_secs``."""
    line = call.line
    loop = asyncio.get_running_loop()

    def quiet() -> bool:
        last = line.arrivals[-1][0] if line.arrivals else 0.0
        return line.buffered_secs == 0 and loop.time() - last >= quiet_secs

    try:
        await line.wait_until(quiet, timeout)
    except TimeoutError:
        pass


LAG_WINDOW = 16000  # 2 s of 8 kHz: the echo's alignment is found again in every such window
MAX_LAG = 4000  # samples the echo's content may lag its input by (0.5 s)
MAX_LEAD = 400  # or lead it by (samples the server dropped)


def content_lags(sent: np.ndarray, got: np.ndarray) -> list[int]:
    """Per ``LAG_WINDOW`` of the echo, the samples its content is shifted by: ``got[i] ~ sent[i - lag]``.

    Found again in every window, so audio dropped mid-call (a frame lost) does not shift the rest of
    the call's mapping; a quiet window keeps the previous window's lag."""
    lags: list[int] = []
    for w in range(0, len(got), LAG_WINDOW):
        seg = got[w : w + LAG_WINDOW].astype(np.float64)
        lo = max(0, w - MAX_LAG)
        ref = sent[lo : w + LAG_WINDOW + MAX_LEAD].astype(np.float64)
        if len(seg) < 800 or len(ref) < len(seg) or np.abs(seg).max() < SPEECH_LEVEL:
            lags.append(lags[-1] if lags else 0)
            continue
        size = 1 << int(np.ceil(np.log2(len(ref) + len(seg))))
        corr = np.fft.irfft(np.fft.rfft(ref, size) * np.conj(np.fft.rfft(seg, size)), size)
        valid = corr[: len(ref) - len(seg) + 1]  # valid[k] = sum(seg[i] * ref[i + k])
        k = int(np.argmax(valid))
        lags.append(w - (lo + k))  # got[w + i] ~ sent[lo + k + i]
    return lags


@dataclass
class CallResult:
    protocol_errors: int = 0
    sent_secs: float = 0.0
    received_secs: float = 0.0
    gap_ms: int = 0  # silence on the line where there should have been audio
    gaps: int = 0
    gaps_after_stall: int = 0  # of those, the ones that followed a stall of the load generator
    gap_ms_after_stall: int = 0
    max_ahead_ms: int = 0
    max_late_send_ms: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # echo: per message
    lag_samples: list[int] = field(default_factory=list)  # distinct lags over the call's windows
    turns: list[tuple[int, int | None]] = field(default_factory=list)  # bot: (end of speech, first audio) ns


async def echo_call(call: TwilioEmulator, pcm8k: bytes, seconds: float, started: asyncio.Event) -> CallResult:
    """One echo call streaming ``pcm8k`` (looped) for ``seconds``; ``started`` is set once dialed."""
    await call.dial()
    started.set()
    caller = Caller(call, keep_audio=True)
    total = int(seconds / FRAME_SECS) * 2 * FRAME_SAMPLES
    audio = (pcm8k * (total // len(pcm8k) + 1))[:total]
    caller.say(audio)
    await caller.run(until_empty=True)
    await wait_line_quiet(call, 0.5, timeout=15)
    line = call.line
    await call.hang_up()
    result = CallResult(protocol_errors=len(call.protocol_errors), sent_secs=len(caller.sent_ns) * FRAME_SECS)
    result.received_secs = line.sent_bytes / 8000
    count_gaps(result, line.pauses, caller.stalls)
    result.max_ahead_ms = round(line.max_buffered_secs * 1000)
    result.max_late_send_ms = round(caller.max_late_ms, 1)
    assert caller.sent_pcm is not None
    sent = np.frombuffer(bytes(caller.sent_pcm), dtype="<i2")
    got = np.frombuffer(bytes(line.played), dtype="<i2")
    lags = content_lags(sent, got)
    result.lag_samples = sorted(set(lags))
    for arrived, upto in line.arrivals:
        lag = lags[min(len(lags) - 1, (upto - 1) // LAG_WINDOW)] if lags else 0
        frame = (upto - 1 - lag) // FRAME_SAMPLES  # the caller frame holding this message's last sample
        if 0 <= frame < len(caller.sent_ns):
            result.latencies_ms.append(arrived * 1000 - caller.sent_ns[frame] / 1e6)
    return result


async def bot_call(
    call: TwilioEmulator, question: bytes, deadline: float, *, first_turn: asyncio.Event | None = None
) -> CallResult:
    """Ask ``question`` (8 kHz PCM16) again and again until ``time.monotonic()`` passes ``deadline``;
    the call must already be dialed. ``first_turn`` is set once the first reply has played."""
    caller = Caller(call)
    streaming = asyncio.create_task(caller.run(), name="caller")
    result = CallResult()
    line = call.line
    try:
        await caller.say(bytes(int(0.5 * 8000) * 2))  # the caller's first half second: silence
        while True:
            end_ns = await caller.say(question)

            # Arrivals are stamped on the event loop's clock (time.monotonic), in seconds.
            def replied(after: int = end_ns) -> bool:
                return bool(line.arrivals) and line.arrivals[-1][0] * 1e9 >= after

            try:
                await line.wait_until(replied, timeout=30)
            except TimeoutError:
                result.turns.append((end_ns, None))
                break
            first = next(round(t * 1e9) for t, _ in line.arrivals if t * 1e9 >= end_ns)
            result.turns.append((end_ns, first))
            await wait_line_quiet(call, 1.2, timeout=60)
            if first_turn is not None:
                first_turn.set()
            if time.monotonic() >= deadline:
                break
    finally:
        streaming.cancel()
        await asyncio.gather(streaming, return_exceptions=True)
    await call.hang_up()
    result.protocol_errors = len(call.protocol_errors)
    result.sent_secs = len(caller.sent_ns) * FRAME_SECS
    result.received_secs = line.sent_bytes / 8000
    count_gaps(result, [p for p in line.pauses if p[1] < REPLY_GAP_TICKS], caller.stalls)
    result.max_ahead_ms = round(line.max_buffered_secs * 1000)
    result.max_late_send_ms = round(caller.max_late_ms, 1)
    return result


def count_gaps(result: CallResult, pauses: list[tuple[float, int]], stalls: list[float]) -> None:
    result.gaps, result.gap_ms = len(pauses), 20 * sum(ticks for _, ticks in pauses)
    for ended, ticks in pauses:
        began = ended - ticks * FRAME_SECS
        if any(began - STALL_BLAME_SECS <= t <= ended for t in stalls):
            result.gaps_after_stall += 1
            result.gap_ms_after_stall += 20 * ticks


def summary(results: list[CallResult]) -> dict[str, Any]:
    """What every step reports for its calls."""
    latencies = sorted(x for r in results for x in r.latencies_ms)
    return {
        "protocol_errors": sum(r.protocol_errors for r in results),
        "gaps": sum(r.gaps for r in results),
        "gap_ms": sum(r.gap_ms for r in results),
        "gaps_after_loadgen_stall": sum(r.gaps_after_stall for r in results),
        "gap_ms_not_loadgen": sum(r.gap_ms - r.gap_ms_after_stall for r in results),
        "received_of_sent_min": round(
            min((r.received_secs / r.sent_secs for r in results if r.sent_secs), default=0), 3
        ),
        "max_ahead_ms": max((r.max_ahead_ms for r in results), default=0),
        "loadgen_max_late_ms": max((r.max_late_send_ms for r in results), default=0.0),
        "echo_ms_p50": percentile(latencies, 50),
        "echo_ms_p95": percentile(latencies, 95),
        "echo_ms_max": round(latencies[-1], 1) if latencies else None,
        "lag_samples": sorted({x for r in results for x in r.lag_samples}) if latencies else None,
    }


def percentile(values: list[float], p: float) -> float | None:
    """``values`` sorted; nearest-rank percentile."""
    if not values:
        return None
    rank = min(len(values) - 1, max(0, int(np.ceil(p / 100 * len(values))) - 1))
    return round(float(values[rank]), 1)
