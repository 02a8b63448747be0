"""Run frames through a processor or pipeline and look at what comes out, both ways."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeVar

from ..frames import EndFrame, Frame, StartFrame
from ..pipeline import (
    DOWNSTREAM,
    UPSTREAM,
    BaseObserver,
    Clock,
    FrameDirection,
    FrameProcessor,
    Pipeline,
    PipelineParams,
    PipelineTask,
)

F = TypeVar("F", bound=Frame)


class FrameRecorder(FrameProcessor):
    """Passes everything on and remembers the frames going one way; lets tests wait for them."""

    def __init__(self, direction: FrameDirection, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.direction = direction
        self.frames: list[Frame] = []
        self._arrived = asyncio.Condition()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is self.direction:
            self.frames.append(frame)
            async with self._arrived:
                self._arrived.notify_all()
        await self.push_frame(frame, direction)

    async def wait_for(self, frame_type: type[F], *, count: int = 1, timeout: float = 10.0) -> F:
        """Wait until ``count`` frames of ``frame_type`` have arrived; return the last of them."""

        def found() -> list[F]:
            return [f for f in self.frames if isinstance(f, frame_type)]

        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(found()) >= count)
        return found()[count - 1]

    def of_type(self, frame_type: type[F]) -> list[F]:
        return [f for f in self.frames if isinstance(f, frame_type)]


class PipelineHarness:
    """A running pipeline task around ``processor`` with recorders on both sides.

    ``async with PipelineHarness(proc) as h:`` starts it; push frames with :meth:`push`
    (downstream into the processor) or :meth:`push_up` (upstream, from below); read ``h.down`` and
    ``h.up`` or wait with ``h.down_recorder.wait_for(...)``. Leaving the block ends the task
    gracefully (or cancels it after an exception) and waits until it has cleaned up.
    """

    def __init__(
        self,
        processor: FrameProcessor,
        *,
        params: PipelineParams | None = None,
        observers: Sequence[BaseObserver] = (),
        clock: Clock | None = None,
        **task_options: Any,
    ) -> None:
        self.processor = processor
        self.up_recorder = FrameRecorder(UPSTREAM, name="harness::up")
        self.down_recorder = FrameRecorder(DOWNSTREAM, name="harness::down")
        task_options.setdefault("idle_timeout_secs", None)
        self.task = PipelineTask(
            Pipeline([self.up_recorder, processor, self.down_recorder]),
            params=params,
            observers=observers,
            clock=clock,
            **task_options,
        )
        self._run: asyncio.Task[None] | None = None
        self._ending = False

    @property
    def down(self) -> list[Frame]:
        """Frames that came out downstream (StartFrame excluded)."""
        return [f for f in self.down_recorder.frames if not isinstance(f, StartFrame)]

    @property
    def up(self) -> list[Frame]:
        """Frames that came out upstream."""
        return list(self.up_recorder.frames)

    async def __aenter__(self) -> PipelineHarness:
        self._run = asyncio.create_task(self.task.run(), name="harness::run")
        started = asyncio.ensure_future(self.task.wait_until_started())
        await asyncio.wait({started, self._run}, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            started.cancel()
            await self._run  # raises what made the task fail to start
            raise RuntimeError("the pipeline task ended before it started")
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.end()
        else:
            await self.cancel()

    async def push(self, *frames: Frame) -> None:
        """Queue frames downstream through the task (in order)."""
        await self.task.queue_frames(frames)

    async def push_up(self, *frames: Frame) -> None:
        """Send frames upstream into the processor from below."""
        for frame in frames:
            await self.down_recorder.push_frame(frame, UPSTREAM)

    async def end(self) -> None:
        """Graceful end: everything pushed so far is processed first (again: just waits)."""
        if not self._ending:
            self._ending = True
            await self.task.stop_when_done()
        await self._wait_run()

    async def cancel(self) -> None:
        self._ending = True
        await self.task.cancel("harness cancelled")
        await self._wait_run()

    async def _wait_run(self) -> None:
        if self._run is not None:
            await self._run


async def run_test(
    processor: FrameProcessor,
    frames_to_send: Sequence[Frame],
    expected_down_frames: Sequence[type[Frame]] | None = None,
    expected_up_frames: Sequence[type[Frame]] | None = None,
    *,
    send_end_frame: bool = True,
    params: PipelineParams | None = None,
    observers: Sequence[BaseObserver] = (),
) -> tuple[list[Frame], list[Frame]]:
    """Send frames through ``processor`` and return what came out ``(downstream, upstream)``.

    The StartFrame and the closing EndFrame are left out of the downstream list. When expected
    types are given, the frames must match them in order and number (``isinstance``).
    """
    harness = PipelineHarness(processor, params=params, observers=observers)
    async with harness:
        await harness.push(*frames_to_send)
        if not send_end_frame:
            await harness.cancel()
    down = harness.down
    if send_end_frame and down and isinstance(down[-1], EndFrame):
        down.pop()
    up = harness.up
    if expected_down_frames is not None:
        _assert_types("downstream", down, expected_down_frames)
    if expected_up_frames is not None:
        _assert_types("upstream", up, expected_up_frames)
    return down, up


def _assert_types(where: str, frames: Sequence[Frame], expected: Sequence[type[Frame]]) -> None:
    got = [type(f).__name__ for f in frames]
    want = [t.__name__ for t in expected]
    ok = len(frames) == len(expected) and all(isinstance(f, t) for f, t in zip(frames, expected, strict=True))
    if not ok:
        raise AssertionError(f"{where} frames: got {got}, expected {want}")
