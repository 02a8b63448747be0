"""Hostile input over the real WebSocket wire against ``voxloop run --bot echo`` (issue 11's checks).

    python bench/fuzz_wire.py             # 100,000 inputs (seed 11), at most 10 minutes
    python bench/fuzz_wire.py --smoke     # 5,000 inputs, well under 20 s (run by the tests)
    python bench/fuzz_wire.py --count 500000 --seed 7 --connections 8

The server is ``voxloop run --bot echo`` in its own process on 127.0.0.1 (the voxloop this script
imports). ``--connections`` clients (every other one on the JSON wire, ``?wire=json``; the rest on
the web client's protobuf wire) each open a session, send ``client-ready`` and then a seeded
stream of inputs, one WebSocket message each, drawn from: random bytes, valid protobuf frames cut
short or with flipped bytes, RTVI messages in protobuf message frames with keys dropped, values
replaced or the JSON cut, audio frames in odd formats (rates, channel counts, lengths), frames over
the 1 MiB limit, and text frames (random text, and RTVI JSON); on the JSON wire the same in its
terms (binary frames, broken JSON, mutated RTVI JSON, ``raw-audio`` in odd formats, oversized and
random text). Everything the server sends back is read and must be readable in the wire's terms.
Every 200 inputs a request must be answered, which proves the server took them (only those
count). A session that may have been sent a valid ``disconnect-bot`` (the bot then ends) and
stops answering is left for a new one.

Passes when: the server process is alive and logged no traceback; no session was closed by the
server and every live session answered its requests; the server's
resident memory once every session has ended is within 10% of what it was after a warm-up session;
and a fresh client then gets ``bot-ready``, an answer and its audio echoed. Exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed

import voxloop
from sessions import ROOT, Server, free_port, http_json
from voxloop.testing.rtvi_client import RTVIClient
from voxloop.transports.serializers import frames_pb2

VOXLOOP_SOURCE = str(Path(voxloop.__file__).resolve().parents[1])
MAX_MESSAGE_BYTES = 1 << 20
PROBE_EVERY = 200

_AUDIO_640 = base64.b64encode(bytes(640)).decode()
VALID_MESSAGES: list[dict[str, Any]] = [
    {"type": "client-ready", "data": {"version": "2.1.0", "about": {"library": "fuzz"}}},
    {"type": "client-message", "data": {"t": "ping", "d": {"n": 1}}},
    {"type": "send-text", "data": {"content": "hello there", "options": {"run_immediately": True}}},
    {"type": "append-to-context", "data": {"role": "user", "content": "hi", "run_immediately": False}},
    {"type": "raw-audio", "data": {"base64Audio": _AUDIO_640, "sampleRate": 16000, "numChannels": 1}},
    {"type": "raw-audio-batch", "data": {"base64AudioBatch": ["AAAA"], "sampleRate": 8000, "numChannels": 1}},
    {"type": "dtmf", "data": {"buttons": ["1", "#"]}},
    {
        "type": "llm-function-call-result",
        "data": {"function_name": "f", "tool_call_id": "t1", "arguments": {}, "result": "ok"},
    },
    {"type": "ui-event", "data": {"event": "click", "payload": {"x": 1}}},
    {
        "type": "update-config",
        "data": {"config": [{"service": "tts", "options": [{"name": "v", "value": 1}]}]},
    },
    {
        "type": "action",
        "data": {"service": "tts", "action": "say", "arguments": [{"name": "text", "value": "a"}]},
    },
    {"type": "describe-actions"},
]
# Ends the session when valid, so it is drawn rarely: the rest of the inputs need a live session.
DISCONNECT_BOT: dict[str, Any] = {"type": "disconnect-bot", "data": {}}
RATES = [0, 1, 2, 7999, 8000, 11025, 16000, 44100, 48000, 48001, 96000, 192000, 2**31, 2**32 - 1]
CHANNELS = [0, 1, 2, 3, 8, 255, 2**32 - 1]


def envelope(message: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {"label": "rtvi-ai", **message, "id": f"f{rng.randrange(1 << 30):08x}"}


def message_frame(text: str) -> bytes:
    frame = frames_pb2.Frame()
    frame.message.data = text
    return bytes(frame.SerializeToString())


def audio_frame(audio: bytes, sample_rate: int, num_channels: int) -> bytes:
    frame = frames_pb2.Frame()
    frame.audio.audio = audio
    frame.audio.sample_rate = sample_rate
    frame.audio.num_channels = num_channels
    return bytes(frame.SerializeToString())


def random_json(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, -1, 1, 2**31, 2**63, -(2**63), 10**30])
    if pick == 3:
        return rng.choice([0.5, -1e308, 1e-300, 3.14])
    if pick == 4:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(12)))
    if pick == 5:
        return rng.choice(["", "rtvi-ai", "send-text", "client-ready", "x" * 300, "\u0000", "🎤"])
    if pick in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {str(random_json(rng, 3)): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def mutated_message(rng: random.Random) -> tuple[str, bool]:
    """An RTVI message as JSON text, mutated; and whether it could be a valid disconnect-bot."""
    base = DISCONNECT_BOT if rng.random() < 0.002 else rng.choice(VALID_MESSAGES)
    message = json.loads(json.dumps(envelope(base, rng)))
    for _ in range(rng.randrange(1, 4)):
        choice = rng.randrange(6)
        if choice == 0 and message:
            message.pop(rng.choice(sorted(message)))
        elif choice == 1:
            message[rng.choice(["label", "type", "id", "data"])] = random_json(rng)
        elif choice == 2 and isinstance(message.get("data"), dict) and message["data"]:
            message["data"][rng.choice(sorted(message["data"]))] = random_json(rng)
        elif choice == 3:
            message["type"] = (DISCONNECT_BOT if rng.random() < 0.002 else rng.choice(VALID_MESSAGES))["type"]
        elif choice == 4:
            message["data"] = random_json(rng)
        else:
            text = json.dumps(message)
            return text[: rng.randrange(len(text) + 1)], message.get("type") == "disconnect-bot"
    return json.dumps(message), message.get("type") == "disconnect-bot"


def hostile_input(rng: random.Random) -> tuple[bytes | str, str, bool]:
    """(what to send, its category, whether it may end the session legitimately)."""
    roll = rng.random()
    if roll < 0.15:
        return rng.randbytes(rng.randrange(0, 600)), "random bytes", False
    if roll < 0.33:
        valid = rng.choice(
            [
                audio_frame(rng.randbytes(512), 16000, 1),
                message_frame(json.dumps(envelope(rng.choice(VALID_MESSAGES), rng))),
            ]
        )
        data = bytearray(valid[: rng.randrange(len(valid))] if rng.random() < 0.6 else valid)
        for _ in range(rng.randrange(0, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data), "broken protobuf", False
    if roll < 0.68:
        text, ends = mutated_message(rng)
        return message_frame(text), "mutated RTVI JSON", ends
    if roll < 0.89:
        rate, channels = rng.choice(RATES), rng.choice(CHANNELS)
        size = rng.choice([0, 1, 2, 3, 511, 512, 640, 2000, 4001, 20_000])
        return audio_frame(bytes(size), rate, channels), "odd audio", False
    if roll < 0.999:
        if rng.random() < 0.5:
            text, ends = mutated_message(rng)
            return text, "text frame (RTVI JSON)", ends
        return "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randrange(200))), "text frame", False
    size = MAX_MESSAGE_BYTES + rng.randrange(1, 4096)
    return message_frame("x" * size), "oversized", False


def hostile_json_input(rng: random.Random) -> tuple[bytes | str, str, bool]:
    """The same, for a connection on the JSON wire (``?wire=json``: RTVI JSON in text frames)."""
    roll = rng.random()
    if roll < 0.15:
        return rng.randbytes(rng.randrange(0, 600)), "json wire: binary frame", False
    if roll < 0.33:
        text = json.dumps(envelope(rng.choice(VALID_MESSAGES), rng))
        chars = list(text[: rng.randrange(len(text))] if rng.random() < 0.6 else text)
        for _ in range(rng.randrange(0, 4)):
            if chars:
                chars[rng.randrange(len(chars))] = chr(rng.randrange(0x20, 0x250))
        return "".join(chars), "json wire: broken JSON", False
    if roll < 0.68:
        text, ends = mutated_message(rng)
        return text, "json wire: mutated RTVI JSON", ends
    if roll < 0.89:
        size = rng.choice([0, 1, 2, 3, 511, 512, 640, 2000, 4001, 20_000])
        data = {"base64Audio": base64.b64encode(bytes(size)).decode()}
        data |= {"sampleRate": rng.choice(RATES), "numChannels": rng.choice(CHANNELS)}
        return json.dumps(envelope({"type": "raw-audio", "data": data}, rng)), "json wire: odd audio", False
    if roll < 0.999:
        return (
            "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randrange(200))),
            "json wire: text",
            False,
        )
    return "x" * (MAX_MESSAGE_BYTES + rng.randrange(1, 4096)), "json wire: oversized", False


@dataclass
class Tally:
    sent: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    replies: int = 0
    undecodable_replies: int = 0
    sessions: int = 0
    ended_after_disconnect_bot: int = 0  # left by the client after a (maybe valid) disconnect-bot
    unexpected_closes: list[str] = field(default_factory=list)
    unanswered_requests: int = 0
    processed: int = 0  # inputs the server is known to have taken (a later request was answered)


async def fuzz_connection(
    base: str, rng: random.Random, count: int, deadline: float, tally: Tally, json_wire: bool = False
) -> None:
    """Has the server take ``count`` hostile inputs, over as many sessions as it takes.

    Every ``PROBE_EVERY`` inputs a request must be answered: messages are handled in order, so the
    answer proves the server has taken everything sent before it (only those inputs count). A
    session that may have been sent a valid ``disconnect-bot`` and then stops answering has ended
    as asked: the client leaves and starts a new one.
    """
    left = count
    while left > 0 and time.monotonic() < deadline:
        url = http_json(f"{base}/start", {"transport": "websocket"})["wsUrl"]
        url += "?wire=json" if json_wire else ""
        tally.sessions += 1
        # A short close timeout: a bot that is ending (its audio playing out) no longer reads.
        connecting = websockets.connect(url, max_size=None, proxy=None, ping_interval=None, close_timeout=0.5)
        async with connecting as ws:
            session = _Session(ws, tally, json_wire)
            reader = asyncio.create_task(session.read())
            may_have_ended, pending = False, 0
            try:
                await session.send_message(envelope(VALID_MESSAGES[0], rng))
                while left > pending and time.monotonic() < deadline:
                    data, category, ends = (hostile_json_input if json_wire else hostile_input)(rng)
                    await ws.send(data)
                    pending += 1
                    tally.sent += 1
                    tally.by_category[category] = tally.by_category.get(category, 0) + 1
                    may_have_ended = may_have_ended or ends
                    if pending in (PROBE_EVERY, left):
                        if not await session.answers(rng, timeout=3 if may_have_ended else 15):
                            break
                        tally.processed += pending
                        left, pending = left - pending, 0
            except ConnectionClosed as exc:
                if not may_have_ended:
                    tally.unexpected_closes.append(f"{exc!r} after {tally.sent} inputs")
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            if pending:  # not confirmed: the session ended (as asked, or not)
                if may_have_ended:
                    tally.ended_after_disconnect_bot += 1
                else:
                    tally.unanswered_requests += 1


class _Session:
    """One fuzzed session's reading side: checks every reply and notes the answers to requests."""

    def __init__(self, ws: websockets.ClientConnection, tally: Tally, json_wire: bool) -> None:
        self.ws, self.tally, self.json_wire = ws, tally, json_wire
        self.answered: set[str] = set()
        self.changed = asyncio.Event()

    async def read(self) -> None:
        try:
            async for data in self.ws:
                self.tally.replies += 1
                try:
                    answer = self._decode(data)
                    if answer is not None and answer.get("type") == "server-response":
                        self.answered.add(str(answer.get("id")))
                        self.changed.set()
                except Exception:  # a server frame a client of this wire could not read
                    self.tally.undecodable_replies += 1
        except ConnectionClosed:
            pass

    def _decode(self, data: bytes | str) -> dict[str, Any] | None:
        """The RTVI message in a server frame (None for audio or an interruption); raises if unreadable."""
        if self.json_wire:
            if not isinstance(data, str):
                raise ValueError("a binary frame on the JSON wire")
            message = json.loads(data)
        else:
            frame = frames_pb2.Frame.FromString(data)
            if frame.WhichOneof("frame") != "message":
                return None
            message = json.loads(frame.message.data)
        if not isinstance(message, dict):
            raise ValueError("not an RTVI message")
        return message if message.get("label") == "rtvi-ai" else None

    async def send_message(self, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        await self.ws.send(text if self.json_wire else message_frame(text))

    async def answers(self, rng: random.Random, timeout: float) -> bool:
        """Whether the session answers a request now (False: no answer within ``timeout``)."""
        request = envelope({"type": "client-message", "data": {"t": "still-there"}}, rng)
        try:
            await self.send_message(request)
            async with asyncio.timeout(timeout):
                while request["id"] not in self.answered:
                    self.changed.clear()
                    await self.changed.wait()
            return True
        except (TimeoutError, ConnectionClosed):
            return False


async def served_freshly(base: str) -> bool:
    """A new client after the storm: handshake, a request answered, its audio echoed."""
    url = http_json(f"{base}/start", {"transport": "websocket"})["wsUrl"]
    async with RTVIClient(url) as client:
        await client.ready()
        answer = await client.request("fresh", {"ok": True})
        await client.stream_audio(bytes(range(256)) * 50, realtime=False)
        await client.wait_for_audio(int(12800 * 1.5 * 0.9), timeout=20)
    return answer.get("echo") == {"ok": True} and not client.protocol_errors


def wait_for_no_sessions(base: str, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        sessions = int(http_json(f"{base}/status")["sessions"])
        if sessions == 0 or time.monotonic() > deadline:
            return sessions
        time.sleep(0.1)


def run(count: int, seed: int, connections: int, max_seconds: float) -> dict[str, Any]:
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [VOXLOOP_SOURCE, os.environ.get("PYTHONPATH")]))
    port = free_port()
    log = Path(tempfile.gettempdir()) / f"voxloop-fuzz-wire-{port}.log"
    command = [sys.executable, "-m", "voxloop.cli", "run", "--bot", "echo", "--port", str(port)]
    server = Server("voxloop", [*command, "--max-sessions", "100"], port, log)
    server.start(timeout=60)
    tally = Tally()
    try:
        fresh_before = asyncio.run(served_freshly(server.base))  # also the warm-up
        wait_for_no_sessions(server.base)
        _, rss_before = server.sample()
        cpu_before, _ = server.sample()
        started = time.monotonic()
        deadline = started + max_seconds

        async def storm() -> None:
            share = [count // connections + (i < count % connections) for i in range(connections)]
            rngs = [random.Random(f"{seed}-{i}") for i in range(connections)]
            await asyncio.gather(
                *(
                    fuzz_connection(server.base, rngs[i], share[i], deadline, tally, json_wire=i % 2 == 1)
                    for i in range(connections)
                )
            )

        asyncio.run(storm())
        seconds = time.monotonic() - started
        left_sessions = wait_for_no_sessions(server.base)
        cpu_after, rss_after = server.sample()
        fresh_after = asyncio.run(served_freshly(server.base))
        alive = server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
    text = log.read_text(errors="replace") if log.exists() else ""
    tracebacks = text.count("Traceback")
    growth = (rss_after - rss_before) / rss_before
    checks = {
        "all inputs taken by the server": tally.processed >= count,
        "server alive": alive,
        "no traceback in the server log": tracebacks == 0,
        "no session closed unexpectedly": not tally.unexpected_closes,
        "every live session answered": tally.unanswered_requests == 0,
        "every reply a protobuf frame": tally.undecodable_replies == 0,
        "sessions all ended": left_sessions == 0,
        "RSS within 10% of before": growth <= 0.10,
        "a fresh client served before and after": fresh_before and fresh_after,
    }
    return {
        "seed": seed,
        "inputs": tally.processed,
        "sent": tally.sent,
        "by_category": dict(sorted(tally.by_category.items())),
        "seconds": round(seconds, 1),
        "inputs_per_s": round(tally.sent / seconds),
        "server_cpu_s": (cpu_after - cpu_before) / 100,
        "replies": tally.replies,
        "sessions": tally.sessions,
        "left_after_disconnect_bot": tally.ended_after_disconnect_bot,
        "unexpected_closes": tally.unexpected_closes[:5],
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1),
        "rss_growth_pct": round(100 * growth, 1),
        "tracebacks": tracebacks,
        "log": str(log),
        "checks": checks,
        "passed": all(checks.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="5,000 inputs (CI)")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    count, max_seconds = (5000, 20.0) if args.smoke else (args.count, args.max_seconds)
    result = run(count, args.seed, args.connections, max_seconds)
    for key, value in result.items():
        if key != "checks":
            print(f"{key:24} {value}")
    for check, ok in result["checks"].items():
        print(f"  [{'ok' if ok else 'FAIL'}] {check}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = "fuzz-wire-smoke.json" if args.smoke else "fuzz-wire.json"
    (out / name).write_text(json.dumps(result, indent=1) + "\n")
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
