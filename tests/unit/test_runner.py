from __future__ import annotations

import asyncio
import os
import signal

from voxloop.frames import CancelFrame, Frame
from voxloop.pipeline import FrameProcessor, PipelineRunner, PipelineTask


async def test_sigint_cancels_every_task(no_leaked_tasks) -> None:
    tasks = [PipelineTask(FrameProcessor(), idle_timeout_secs=None) for _ in range(3)]
    finished: list[Frame] = []
    for task in tasks:
        task.add_event_handler("on_pipeline_finished", lambda t, f: finished.append(f))
    runner = PipelineRunner()
    running = asyncio.create_task(runner.run(*tasks))
    for task in tasks:
        await task.wait_until_started()
    os.kill(os.getpid(), signal.SIGINT)
    await running
    assert runner.signalled
    assert len(finished) == 3 and all(isinstance(f, CancelFrame) for f in finished)
    assert all(task.has_finished() for task in tasks)
    # The handler is gone afterwards: the default SIGINT behaviour is back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_runner_ends_tasks_gracefully() -> None:
    task = PipelineTask(FrameProcessor(), idle_timeout_secs=None)
    runner = PipelineRunner(handle_sigint=False, handle_sigterm=False)
    running = asyncio.create_task(runner.run(task))
    await task.wait_until_started()
    await runner.stop_when_done()
    await running
    assert task.has_finished()
