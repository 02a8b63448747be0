"""The wire fuzzer's smoke run: 5,000 hostile inputs against a real ``voxloop run --bot echo``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_hostile_wire_input_crashes_nothing_and_leaks_nothing() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "bench/fuzz_wire.py", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((ROOT / "bench" / "results" / "fuzz-wire-smoke.json").read_text())
    assert result["passed"] and result["inputs"] >= 5000
    assert all(result["checks"].values()), result["checks"]
    wanted = {
        "random bytes",
        "broken protobuf",
        "mutated RTVI JSON",
        "odd audio",
        "json wire: mutated RTVI JSON",
    }
    assert set(result["by_category"]) >= wanted
