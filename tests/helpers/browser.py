"""Running the browser drivers (``tests/browser/*.mjs``): what they need, and their JSON report."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soxr

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
WEB_BUILD = ROOT / "src" / "voxloop" / "server" / "static" / "index.html"
PLAYWRIGHT = ROOT / "web" / "node_modules" / "playwright-core" / "package.json"


def missing(*, browser: bool) -> str | None:
    """Why the page (``browser=False``) or a browser run cannot be tested here, or None."""
    if browser and not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (make browser-deps installs Debian's chromium)"
    if browser and shutil.which("node") is None:
        return "node is missing"
    if not WEB_BUILD.exists() or (browser and not PLAYWRIGHT.exists()):
        return "the web page is not built or web/node_modules is missing (run `make web`)"
    return None


def require(reason: str | None) -> None:
    """Skips for ``reason``; in CI, where the browser tests must run, fails instead."""
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests, but {reason}")
        pytest.skip(reason)


async def run_driver(script: Path, args: list[str], timeout: float = 90.0) -> dict[str, Any]:
    """Runs a driver script with node and returns its report; fails the test, with the page's
    errors and console, if the run did not get through."""
    proc = await asyncio.create_subprocess_exec(
        "node", str(script), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{script.name} did not finish in {timeout}s")
    lines = stdout.decode().strip().splitlines()
    assert lines, f"{script.name} printed nothing (exit {proc.returncode}): {stderr.decode()[-2000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    if not report.get("ok"):
        pytest.fail(
            f"the browser run failed at {report.get('stage')!r}: {report.get('error')}\n"
            f"page errors: {report.get('pageErrors')}\nconsole: {report.get('console', [])[-30:]}\n"
            f"stderr: {stderr.decode()[-2000:]}"
        )
    return report


def write_fake_mic(path: Path, pcm16k: bytes) -> None:
    """The fake mic's WAV from 16 kHz PCM, at 48 kHz as Chromium captures."""
    samples = np.frombuffer(pcm16k, dtype="<i2").astype(np.float32) / 32768.0
    resampled = soxr.resample(samples, 16000, 48000)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes((np.clip(resampled, -1, 1) * 32767).astype("<i2").tobytes())
