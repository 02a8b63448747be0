"""``voxloop demo``: a small text pipeline in the terminal, to see frames flow before any model.

Each line typed becomes a TranscriptionFrame, as if the user had said it. A parallel pipeline
counts words in one branch and answers in the other; an observer prints every frame that reaches
the printer. End with an empty line, Ctrl-D or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TextIO

from .frames import EndFrame, Frame, TextFrame, TranscriptionFrame
from .pipeline import (
    FrameDirection,
    FrameProcessor,
    ParallelPipeline,
    Pipeline,
    PipelineRunner,
    PipelineTask,
)


class _Responder(FrameProcessor):
    """Answers each transcription, the way an LLM would, one word at a time."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            for word in f"You said: {frame.text}".split():
                await self.push_frame(TextFrame(word + " "))


class _WordCounter(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.words = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TranscriptionFrame):
            self.words += len(frame.text.split())
            await self.push_frame(TextFrame(f"[{self.words} words so far] "))
        await self.push_frame(frame, direction)


class _Printer(FrameProcessor):
    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self._out = out

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if type(frame) is TextFrame:
            self._out.write(frame.text)
        elif isinstance(frame, TranscriptionFrame):
            self._out.write(f"\nuser: {frame.text}\nbot:  ")
        self._out.flush()
        await self.push_frame(frame, direction)


async def run_demo(lines: TextIO, out: TextIO) -> None:
    counter = _WordCounter()
    task = PipelineTask(
        Pipeline([ParallelPipeline([_Responder()], [counter]), _Printer(out)]),
        idle_timeout_secs=None,
    )
    out.write("voxloop demo: type a line and press Enter (empty line to quit).\n")
    out.flush()

    # stdin is read on a daemon thread: a blocked read must not keep the process alive on Ctrl-C.
    loop = asyncio.get_running_loop()
    typed: asyncio.Queue[str] = asyncio.Queue()

    def read_lines() -> None:
        for line in iter(lines.readline, ""):
            loop.call_soon_threadsafe(typed.put_nowait, line)
        loop.call_soon_threadsafe(typed.put_nowait, "")

    threading.Thread(target=read_lines, daemon=True, name="demo-stdin").start()

    async def feed() -> None:
        await task.wait_until_started()
        while line := (await typed.get()).strip():
            await task.queue_frame(TranscriptionFrame(line, user_id="terminal", timestamp=""))
        await task.queue_frame(EndFrame())

    feeder = asyncio.create_task(feed())
    try:
        await PipelineRunner().run(task)
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
    out.write(f"\nbye ({counter.words} words)\n")
