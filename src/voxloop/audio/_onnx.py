"""One onnxruntime session per model file, shared by every stream of the process (the VAD, Smart Turn)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["shared_session"]

_sessions: dict[Path, Any] = {}
_lock = threading.Lock()


def shared_session(path: Path, check: Callable[[Path, Any], None]) -> Any:
    """The process-wide session for ``path``, created on first use; ``check(path, session)`` raises if the
    file is not the model the caller expects (a session that fails it is not kept)."""
    key = path.resolve()
    with _lock:
        session = _sessions.get(key)
        if session is None:
            import onnxruntime  # type: ignore[import-untyped]  # lazy: a 100 ms+ import, only for the models

            options = onnxruntime.SessionOptions()
            # One thread: the models are small and sessions share the cores, so more threads mostly add
            # hand-off cost (Smart Turn: 2 threads saved a few ms on an idle machine, lost more under load).
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = onnxruntime.InferenceSession(
                str(key), sess_options=options, providers=["CPUExecutionProvider"]
            )
            check(key, session)
            _sessions[key] = session
        return session
