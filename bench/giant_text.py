"""What one giant ``send-text`` costs the server, and where the time goes.

    python bench/giant_text.py            # stages at 10 kB, 100 kB, 1 MB, then the wire (default bot)
    python bench/giant_text.py --smoke    # stages at 10 kB and 100 kB, the wire at 1 kB and 1 MB (CI)

Stages: each step a client's text takes on the server's real path, timed alone (best of 3) on the
same text: the protobuf frame and its JSON (``ProtobufFrameSerializer.deserialize``), the RTVI
envelope and pydantic validation (``decode_client_message``), and the TTS sentence aggregator
(``SentenceAggregator``) fed as an LLM streams (a word at a time: the demo agent's echo) and in one
piece (``tts:say``). Three kinds of text: sentences, text with no sentence end, and text full of
abbreviations ("Dr.", "e.g."), the worst case for finding sentence ends. A stage that takes more
than ``--cap`` seconds at one size is not run at the larger ones (it is super-linear: see the ratio).

Wire: ``voxloop run --bot default`` (the offline cascade: the demo agent, which reads back what it
got, and a voice) in its own process; one client sends a ``send-text`` of each size and waits for
the answer to it (``bot-llm-stopped``, or the ``error-response`` refusing it); the server's CPU
(utime + stime from ``/proc``) over that time is reported. Run it on an older checkout
(``PYTHONPATH=/path/to/src``) for the before figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websockets

import voxloop
from sessions import ROOT, Server, free_port, http_json
from voxloop.rtvi.protocol import decode_client_message
from voxloop.services.text_aggregator import SentenceAggregator
from voxloop.transports.serializers import ProtobufFrameSerializer, frames_pb2

KINDS = {
    "sentences": "lorem ipsum dolor sit amet. ",
    "no-ends": "lorem ipsum dolor sit amet ",
    "abbreviations": "see Dr. Who e.g. now ",
}
WORD = re.compile(r"\S+\s*")
# The server runs the voxloop this script imported (a checkout on PYTHONPATH, or the installed one).
VOXLOOP_SOURCE = str(Path(voxloop.__file__).resolve().parents[1])


def make_text(kind: str, size: int) -> str:
    unit = KINDS[kind]
    return (unit * (size // len(unit) + 1))[:size]


def send_text_message(text: str) -> dict[str, Any]:
    data = {"content": text, "options": {}}
    return {"label": "rtvi-ai", "type": "send-text", "data": data, "id": "giant001"}


def wire_bytes(message: dict[str, Any]) -> bytes:
    frame = frames_pb2.Frame()
    frame.message.data = json.dumps(message)
    return bytes(frame.SerializeToString())


def best_of(run: Callable[[], object], repeats: int, cap: float) -> float:
    times: list[float] = []
    while len(times) < repeats and not (times and times[-1] > cap):  # one slow run is enough
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


STAGES = ("protobuf + JSON decode", "RTVI validation", "sentences, word by word", "sentences, in one piece")


def prepare(stage: str, text: str) -> Callable[[], object]:
    """The work of one stage on ``text``, with its input made beforehand (not timed)."""
    if stage == "protobuf + JSON decode":
        data = wire_bytes(send_text_message(text))
        serializer = ProtobufFrameSerializer()
        return lambda: serializer.deserialize(data)
    if stage == "RTVI validation":  # what the serializer hands the RTVI processor: the parsed JSON
        message = send_text_message(text)
        return lambda: decode_client_message(message)
    if stage == "sentences, word by word":
        words = WORD.findall(text)
        return lambda: _feed(words)
    return lambda: SentenceAggregator().add(text)


def stages(sizes: list[int], cap: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        for stage in STAGES:
            skipped = False
            for size in sizes:
                row: dict[str, Any] = {"kind": kind, "stage": stage, "size": size, "seconds": None}
                if not skipped:
                    row["seconds"] = best_of(
                        prepare(stage, make_text(kind, size)), 3 if size < 1e6 else 1, cap
                    )
                    skipped = row["seconds"] > cap
                rows.append(row)
    return rows


def _feed(words: list[str]) -> None:
    aggregator = SentenceAggregator()
    for word in words:
        aggregator.add(word)
    aggregator.flush()


class WireClient:
    """A bare RTVI client on the protobuf wire that only counts what arrives (cheap at any rate)."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.counts: dict[str, int] = {}
        self.answers: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(wire_bytes(message))

    async def read(self) -> None:
        async for data in self.ws:
            frame = frames_pb2.Frame.FromString(data)
            if frame.WhichOneof("frame") != "message":
                continue
            message = json.loads(frame.message.data)
            kind = message.get("type")
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if "id" in message:
                self.answers[message["id"]] = message
            self.changed.set()

    def answered(self, message_id: str, llm_stops_before: int) -> bool:
        return message_id in self.answers or self.counts.get("bot-llm-stopped", 0) > llm_stops_before

    async def wait(self, found: Callable[[], bool], timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while not found():
                    self.changed.clear()
                    await self.changed.wait()
            return True
        except TimeoutError:
            return False


async def wire(sizes: list[int], timeout: float) -> list[dict[str, Any]]:
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [VOXLOOP_SOURCE, os.environ.get("PYTHONPATH")]))
    rows = []
    for size in sizes:  # a fresh server per size: a text that is still being read out stays out
        port = free_port()
        log = Path(tempfile.gettempdir()) / f"voxloop-giant-text-{port}.log"
        script = Path(sys.executable).with_name("voxloop")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "voxloop.cli"]
        server = Server("voxloop", [*command, "run", "--bot", "default", "--port", str(port)], port, log)
        server.start(timeout=120)
        try:
            url = http_json(f"{server.base}/start", {"transport": "websocket"})["wsUrl"]
            async with websockets.connect(url, max_size=None, proxy=None) as ws:
                client = WireClient(ws)
                reader = asyncio.create_task(client.read())
                try:
                    ready = {"version": "2.1.0", "about": {"library": "bench"}}
                    await client.send({"label": "rtvi-ai", "type": "client-ready", "data": ready, "id": "r1"})
                    await client.wait(lambda c=client: c.counts.get("bot-ready", 0) > 0, 30)
                    stopped = client.counts.get("bot-llm-stopped", 0)
                    cpu_before, _ = server.sample()
                    started = time.monotonic()
                    await client.send(send_text_message(make_text("sentences", size)))
                    answered = await client.wait(
                        lambda c=client, n=stopped: c.answered("giant001", n), timeout
                    )
                    wall = time.monotonic() - started
                    cpu_after, rss = server.sample()
                finally:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
            refused = client.answers.get("giant001", {}).get("type") == "error-response"
            rows.append(
                {
                    "size": size,
                    "answer": "refused"
                    if refused
                    else ("answered" if answered else f"none in {timeout:g} s"),
                    "server_cpu_s": (cpu_after - cpu_before) / 100,
                    "wall_s": wall,
                    "bot_llm_text_messages": client.counts.get("bot-llm-text", 0),
                    "server_rss_mib": rss / 1024,
                }
            )
        finally:
            server.stop()
    return rows


def print_stages(rows: list[dict[str, Any]], sizes: list[int]) -> None:
    growth = sizes[-1] / sizes[0]
    print(
        f"{'text':14} {'stage':24} "
        + " ".join(f"{_size(s):>10}" for s in sizes)
        + "   time growth / size growth"
    )
    keys = sorted({(r["kind"], r["stage"]) for r in rows}, key=lambda k: (list(KINDS).index(k[0]), k[1]))
    for kind, stage in keys:
        times = [r["seconds"] for r in rows if (r["kind"], r["stage"]) == (kind, stage)]
        cells = " ".join(f"{t * 1000:>8.1f}ms" if t is not None else f"{'(skipped)':>10}" for t in times)
        if times[-1] is None:
            ratio = "super-linear (skipped)"
        elif times[0]:
            ratio = f"{times[-1] / times[0] / growth:.1f} (1 = linear)"
        else:
            ratio = "-"
        print(f"{kind:14} {stage:24} {cells}   {ratio}")


def _size(size: int) -> str:
    return f"{size // 1_000_000} MB" if size >= 1_000_000 else f"{size // 1000} kB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes, for CI")
    parser.add_argument(
        "--cap", type=float, default=5.0, help="skip larger sizes once a stage takes this long"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="wait this long for each answer on the wire"
    )
    parser.add_argument("--no-wire", action="store_true", help="stages only")
    args = parser.parse_args()
    stage_sizes = [10_000, 100_000] if args.smoke else [10_000, 100_000, 1_000_000]
    wire_sizes = [1_000, 1_000_000] if args.smoke else [1_000, 16_000, 100_000, 1_000_000]
    started = time.monotonic()
    rows = stages(stage_sizes, args.cap)
    print_stages(rows, stage_sizes)
    result: dict[str, Any] = {"stages": rows}
    if not args.no_wire:
        result["wire"] = asyncio.run(wire(wire_sizes, 10.0 if args.smoke else args.timeout))
        print("\nsend-text to the default bot (demo agent), server process:")
        for row in result["wire"]:
            print(
                f"  {_size(row['size']):>6}: {row['answer']:>16}, server CPU {row['server_cpu_s']:.2f} s, "
                f"{row['wall_s']:.2f} s wall, {row['bot_llm_text_messages']} bot-llm-text, "
                f"RSS {row['server_rss_mib']:.0f} MiB"
            )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = "giant-text-smoke.json" if args.smoke else "giant-text.json"
    (out / name).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{time.monotonic() - started:.1f} s; results in bench/results/{name}")


if __name__ == "__main__":
    main()
