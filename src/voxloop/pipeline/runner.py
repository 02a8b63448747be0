"""PipelineRunner: runs pipeline tasks to the end and stops them cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

from .task import PipelineTask

logger = logging.getLogger("voxloop")


class PipelineRunner:
    """Runs tasks until all have finished.

    With ``handle_sigint`` / ``handle_sigterm`` (main thread only), the first signal cancels every
    running task (bounded by each task's cancel timeout); a second one is left to Python's default
    handling, so a stuck program can still be killed.
    """

    def __init__(self, *, handle_sigint: bool = True, handle_sigterm: bool = True) -> None:
        self._signals = [
            sig
            for sig, wanted in ((signal.SIGINT, handle_sigint), (signal.SIGTERM, handle_sigterm))
            if wanted
        ]
        self._tasks: list[PipelineTask] = []
        self.signalled = False

    async def run(self, *tasks: PipelineTask) -> None:
        """Run ``tasks`` concurrently; return when every one has finished and cleaned up."""
        self._tasks.extend(tasks)
        installed = self._install_signal_handlers()
        try:
            await asyncio.gather(*(task.run() for task in tasks))
        finally:
            self._remove_signal_handlers(installed)
            for task in tasks:
                self._tasks.remove(task)

    async def cancel(self, reason: str | None = None) -> None:
        """Cancel every running task."""
        for task in self._tasks:
            task.request_cancel(reason)

    async def stop_when_done(self) -> None:
        """End every running task gracefully."""
        for task in self._tasks:
            await task.stop_when_done()

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("%s received: cancelling %d pipeline task(s)", sig.name, len(self._tasks))
        self.signalled = True
        loop = asyncio.get_running_loop()
        loop.remove_signal_handler(sig)
        for task in self._tasks:
            task.request_cancel(f"{sig.name} received")

    def _install_signal_handlers(self) -> list[signal.Signals]:
        if not self._signals or threading.current_thread() is not threading.main_thread():
            return []
        loop = asyncio.get_running_loop()
        installed = []
        for sig in self._signals:
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError):
                continue
            installed.append(sig)
        return installed

    def _remove_signal_handlers(self, installed: list[signal.Signals]) -> None:
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)
