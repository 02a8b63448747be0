"""Where the shared test data lives: ``../shared`` beside the repository (as in CI)."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("VOXLOOP_SHARED", _REPO.parent / "shared"))
AUDIO = SHARED / "testdata" / "audio"
