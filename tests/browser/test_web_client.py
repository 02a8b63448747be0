"""The real web page, in headless Chromium with a fake microphone, against the dev server.

The server runs in-process (a recording echo bot, so the test sees the audio it received);
``drive.mjs`` drives Debian's Chromium through playwright-core and reports what the page saw as
JSON. Together they check the published client end to end over each transport (WebSocket and
WebRTC): the handshake, a request, typed text, transcripts and bot output on screen, mic audio to
the server, bot audio played in the page, and a clean disconnect on both sides.
"""

from __future__ import annotations

import asyncio
import os
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soxr

from helpers.bots import answering_rtvi
from helpers.browser import run_driver
from helpers.paths import AUDIO
from helpers.server import running_server
from voxloop.bots import SessionInfo
from voxloop.bots.echo import Echo
from voxloop.frames import (
    AggregatedTextFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMMessagesAppendFrame,
    TranscriptionFrame,
)
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.server import ServerConfig
from voxloop.server import app as server_app

DRIVE = Path(__file__).with_name("drive.mjs")

RATE = 16000  # what the page sends: 16 kHz mono PCM16
FRAME = 320  # 20 ms envelope frames
MIC_SECONDS = 7.0  # about 1.6 loops of the fake mic's file
BOT_SECONDS = 4.0
TYPED = "Hello from the browser"
HEARD = "what's the weather like today"


# ---- the bot -------------------------------------------------------------------------------------


class Recorder(FrameProcessor):
    """Keeps the user audio and typed messages the pipeline received, and answers typed text
    with a user transcript and bot output, so the page has both to show."""

    def __init__(self) -> None:
        super().__init__()
        self.audio = bytearray()
        self.typed: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            self.audio += frame.audio
        await self.push_frame(frame, direction)
        if isinstance(frame, LLMMessagesAppendFrame):
            text = str(frame.messages[-1]["content"])
            self.typed.append(text)
            # Upstream, as an STT's would be consumed before the output transport: a
            # transcription reaching it goes on the wire, which the web client cannot decode.
            for heard in (
                InterimTranscriptionFrame(text=HEARD.split()[0], user_id="browser"),
                TranscriptionFrame(text=HEARD, user_id="browser", finalized=True),
            ):
                await self.push_frame(heard, FrameDirection.UPSTREAM)
            await self.push_frame(AggregatedTextFrame(text=f"You typed: {text}"))


class RecordingBot:
    """An echo bot that records what it heard; ``fail`` requests get an error-response."""

    def __init__(self) -> None:
        self.recorders: list[Recorder] = []

    def __call__(self, transport: Any, session: SessionInfo) -> PipelineTask:
        rtvi = answering_rtvi()

        recorder = Recorder()
        self.recorders.append(recorder)
        return PipelineTask(Pipeline([rtvi, transport.input(), recorder, Echo(), transport.output()]))


# ---- audio comparison ------------------------------------------------------------------------------


def envelope_db(pcm: np.ndarray) -> np.ndarray:
    """Level of each 20 ms frame in dB, floored 40 dB under the loudest frame.

    The browser's gain control, noise suppression and echo cancellation change levels and the
    noise floor, not where the speech and its pauses are: the floored dB envelope keeps that shape.
    """
    n = len(pcm) // FRAME
    frames = pcm[: n * FRAME].astype(np.float64).reshape(n, FRAME) / 32768.0
    db = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-9)
    return np.maximum(db, db.max() - 40) if n else db


def envelope_match(recorded: np.ndarray, loop: np.ndarray) -> float:
    """Best normalised cross-correlation of the recording's envelope with the looping file's,
    over every offset into the loop (the recording starts anywhere in it). Silence or noise
    scores near 0; the file itself, however processed, near 1."""
    rec = envelope_db(recorded)
    tpl = envelope_db(loop)
    if len(rec) < len(tpl) or rec.std() == 0:
        return 0.0
    tiled = np.tile(tpl, len(rec) // len(tpl) + 2)
    rec = (rec - rec.mean()) / rec.std()
    best = 0.0
    for lag in range(len(tpl)):
        window = tiled[lag : lag + len(rec)]
        if window.std() > 0:
            best = max(best, float(np.mean(rec * (window - window.mean()) / window.std())))
    return best


def fake_mic_file(path: Path) -> np.ndarray:
    """The fake mic's WAV (48 kHz) from utt01: short lead-in, the utterance, a pause; Chromium
    loops it. Returns the loop at 16 kHz, a whole number of envelope frames long."""
    with wave.open(str(AUDIO / "utt01_weather.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        speech = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    loop = np.concatenate([np.zeros(RATE * 3 // 10, np.int16), speech, np.zeros(RATE * 12 // 10, np.int16)])
    loop = np.concatenate([loop, np.zeros(-len(loop) % FRAME, np.int16)])
    resampled = soxr.resample(loop.astype(np.float32) / 32768.0, RATE, 48000)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes((np.clip(resampled, -1, 1) * 32767).astype("<i2").tobytes())
    return loop


def test_envelope_match_tells_the_file_from_silence_and_noise(tmp_path: Path) -> None:
    """The measure the browser test relies on: it must fail on silence or noise."""
    loop = fake_mic_file(tmp_path / "mic.wav")
    rng = np.random.default_rng(7)
    n = int(RATE * MIC_SECONDS)
    played = np.tile(loop, 3)[12345 : 12345 + n]  # starts mid-loop
    processed = (played * 0.3 + rng.normal(0, 30, n)).astype(np.int16)  # quieter, with a noise floor
    assert envelope_match(processed, loop) > 0.9
    assert envelope_match(np.zeros(n, np.int16), loop) == 0.0
    assert envelope_match(rng.normal(0, 3000, n).astype(np.int16), loop) < 0.3
    with wave.open(str(AUDIO / "utt03_order.wav")) as w:
        other = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert envelope_match(np.tile(other, 3)[:n], loop) < 0.5  # other speech


# ---- serving the page (no browser) -----------------------------------------------------------------


async def test_the_built_page_is_served_at_the_root(web_build: None) -> None:
    async with running_server(ServerConfig(bot=RecordingBot())) as (base, _app), httpx.AsyncClient() as http:
        page = await http.get(f"{base}/")
        script = await http.get(f"{base}/static/app.js")
        style = await http.get(f"{base}/static/style.css")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="static/app.js"' in page.text and 'href="static/style.css"' in page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")


async def test_without_a_build_the_root_says_how_to_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_app, "STATIC_DIR", tmp_path / "static")
    async with running_server(ServerConfig(bot=RecordingBot())) as (base, _app), httpx.AsyncClient() as http:
        page = await http.get(f"{base}/")
        script = await http.get(f"{base}/static/app.js")
    assert page.status_code == 200 and "make web" in page.text
    assert script.status_code == 404


# ---- the browser test -------------------------------------------------------------------------------


async def run_drive(url: str, tmp_path: Path, transport: str, timeout: float = 90.0) -> dict[str, Any]:
    args = ["--url", url, "--wav", str(tmp_path / "mic.wav"), "--profile", str(tmp_path / "profile")]
    args += ["--transport", transport]
    args += ["--mic-seconds", str(MIC_SECONDS), "--bot-seconds", str(BOT_SECONDS), "--typed", TYPED]
    args += ["--heard", HEARD]
    if shots := os.environ.get("VOXLOOP_SCREENSHOTS"):
        args += ["--screenshots", str(Path(shots) / transport)]
    return await run_driver(DRIVE, args, timeout)


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
async def test_web_page_talks_to_the_bot(
    browser_tools: None, loopback_ice: None, tmp_path: Path, transport: str
) -> None:
    loop = fake_mic_file(tmp_path / "mic.wav")
    bot = RecordingBot()
    config = ServerConfig(bot=bot, transports=("websocket", "webrtc"))
    async with running_server(config) as (base, app):
        report = await run_drive(f"{base}/", tmp_path, transport)
        # The page's disconnect closed the socket or the peer connection; the server ends the
        # session on its own.
        await asyncio.wait_for(app.state.sessions.empty.wait(), 10)
        assert len(app.state.sessions) == 0
        await asyncio.wait_for(app.state.webrtc.empty.wait(), 10)
        assert len(app.state.webrtc) == 0

    events = report["events"]
    names = [e["name"] for e in events]
    states = [e["data"] for e in events if e["name"] == "onTransportStateChanged"]
    print(
        f"\nbrowser ({transport}): ready in {report['timings']['botReady']:.0f} ms; "
        f"mic {report['audio']['mic']['seconds']:.2f} s sent, "
        f"bot {report['audio']['bot']['seconds']:.2f} s received "
        f"(rms {report['audio']['bot']['rms']:.4f}, played peak {report['audio']['botPlayedPeakLevel']:.4f})"
    )

    # The page as it loads: WebSocket chosen, WebRTC offered too.
    assert report["initialState"] == "disconnected"
    assert {t["id"]: (t["checked"], t["disabled"]) for t in report["transports"]} == {
        "websocket": (True, False),
        "webrtc": (False, False),
    }

    # Handshake: the client went through its states to ready, and the bot answered as 2.1.0.
    assert report["botReady"]["version"] == "2.1.0"
    assert report["stateAfterBotReady"] == "ready"
    assert states[:1] == ["initializing"] and "ready" in states
    assert states.index("connecting") < states.index("connected") < states.index("ready")
    assert names.index("onBotStarted") < names.index("onBotReady")
    assert report["statusText"] == "Connected" and report["connectButton"] == "Disconnect"
    assert report["serverStatusConnected"]["sessions"] == 1

    # Requests: answered by id, and a refusal reaches the page's error banner.
    assert report["requestReply"] == {"echo": {"n": 42, "from": "browser"}}
    assert report["refusedRequest"]["rejected"]
    assert "asked to fail" in report["errorBanner"]
    assert "onMessageError" in names

    # Typed text reached the bot; its transcript and answer came back to the page and were shown.
    recorder = bot.recorders[0]
    assert recorder.typed == [TYPED]
    transcripts = [e["data"] for e in events if e["name"] == "onUserTranscript"]
    assert {"text": HEARD, "final": True}.items() <= transcripts[-1].items()
    outputs = [e["data"]["text"] for e in events if e["name"] == "onBotOutput"]
    assert outputs == [f"You typed: {TYPED}"]
    assert report["conversation"] == [
        ["user typed", TYPED],
        ["user", HEARD],
        ["bot", f"You typed: {TYPED}"],
    ]

    # Mic audio reached the server: the file's speech pattern, not silence or noise.
    received = np.frombuffer(bytes(recorder.audio), dtype="<i2")
    assert len(received) >= RATE * (MIC_SECONDS - 1)
    score = envelope_match(received, loop)
    print(f"browser: server heard {len(received) / RATE:.2f} s, envelope correlation {score:.3f}")
    assert score > 0.6, f"the server's audio does not follow the fake mic's file (score {score:.3f})"

    # Bot audio (the echo) reached the page's player and was loud enough to be speech.
    bot_audio = report["audio"]["bot"]
    assert bot_audio["seconds"] >= BOT_SECONDS
    assert bot_audio["nonZero"] > 0.5 * bot_audio["samples"]
    assert bot_audio["rms"] > 0.005 and bot_audio["peak"] > 0.05
    assert report["audio"]["botPlayedPeakLevel"] > 0.001  # measured at the player's output
    if transport == "webrtc":
        # The bot's track played in the page's <audio> element while connected, gone after; and
        # the browser's own receive figures agree that speech-level audio arrived.
        assert report["botAudioElements"] == [{"paused": False, "tracks": 1}]
        assert report["botAudioElementsAfter"] == 0
        rtp = report["audio"]["rtp"]
        print(f"browser: inbound-rtp {rtp}; dropped non-loopback candidates {report['droppedCandidates']}")
        assert rtp["packetsReceived"] > 50 * BOT_SECONDS  # 20 ms packets
        assert rtp["totalSamplesDuration"] >= BOT_SECONDS
        assert (rtp["totalAudioEnergy"] / rtp["totalSamplesDuration"]) ** 0.5 > 0.005
    else:
        assert report["audio"]["rtp"] is None

    # Mute works, and the disconnect is clean on the page's side too.
    assert report["micOffLabel"] == "Mic off"
    assert report["finalState"] == "disconnected" and states[-1] == "disconnected"
    assert report["finalStatusText"] == "Not connected" and report["finalConnectButton"] == "Connect"
    assert report["pageErrors"] == []
    # Typed text interrupts the bot (run_immediately), and the server sends the interruption on
    # the wire as Pipecat does; client 1.7.1 cannot decode that kind and logs it, harmlessly.
    unknown_kind = "Failed to deserialize incoming message Error: Unknown frame kind"
    assert [e for e in report["consoleErrors"] if unknown_kind not in e] == []
    assert report["pageErrorMessages"] == ["The bot refused a request: asked to fail"]
    assert "onError" not in names  # nothing fatal: the close was the page's own
