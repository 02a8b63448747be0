"""Locate or build the virtual environment that runs the pipecat peer benchmark.

pipecat is only a point of comparison, never a dependency of voxloop, so it
lives in its own venv at ``bench/.venv-pipecat`` (git-ignored). The venv is
built on first use from ``bench/peer/requirements.txt`` and reused afterwards
as long as it still holds the pinned pipecat version. Standard library only,
so it works from any interpreter that can run the benchmarks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

VENV_DIR = Path("bench") / ".venv-pipecat"
REQUIREMENTS = Path("bench") / "peer" / "requirements.txt"


def _log(message: str) -> None:
    # stderr, so a benchmark's stdout stays machine-readable.
    print(f"[peer-env] {message}", file=sys.stderr, flush=True)


def _venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _pinned_pipecat(requirements: Path) -> str | None:
    """The version ``requirements.txt`` pins pipecat-ai to, if it pins one."""
    for line in requirements.read_text().splitlines():
        match = re.match(r"\s*pipecat-ai\s*==\s*([^\s;#]+)", line)
        if match:
            return match.group(1)
    return None


def _installed_pipecat(python: Path) -> str | None:
    """The pipecat-ai version importable by ``python``, or None if it isn't.

    Importing the pipeline module (not just reading metadata) catches a venv
    whose install was interrupted half-way.
    """
    probe = "import importlib.metadata as m, pipecat.pipeline.pipeline; print(m.version('pipecat-ai'))"
    try:
        done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else None


def peer_python(root: Path) -> Path:
    """Return the python of the pipecat venv under ``root``, building it if needed.

    ``root`` is the voxloop checkout. A venv that already imports the pinned
    pipecat is reused untouched; otherwise it is created with
    ``python3 -m venv`` (if missing or broken) and the requirements are
    installed into it with its own pip. Raises RuntimeError if pipecat still
    can't be imported afterwards.
    """
    root = Path(root).resolve()
    venv = root / VENV_DIR
    requirements = root / REQUIREMENTS
    python = _venv_python(venv)
    wanted = _pinned_pipecat(requirements)

    if python.exists():
        have = _installed_pipecat(python)
        if have is not None and (wanted is None or have == wanted):
            return python

    started = time.monotonic()
    if not python.exists():
        base = shutil.which("python3") or sys.executable
        _log(f"creating venv {venv} with {base}")
        # --clear: start over if a previous attempt left a half-made directory.
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)

    _log(f"installing {requirements.relative_to(root)} (takes a minute or two the first time)")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        check=True,
        stdout=sys.stderr,
    )

    have = _installed_pipecat(python)
    if have is None:
        raise RuntimeError(f"pipecat is still not importable from {python}")
    if wanted is not None and have != wanted:
        raise RuntimeError(f"{python} has pipecat-ai {have}, requirements pin {wanted}")
    _log(f"pipecat-ai {have} ready in {time.monotonic() - started:.0f}s")
    return python
