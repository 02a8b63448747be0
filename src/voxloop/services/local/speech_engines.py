"""Parent side of the speech engine workers: one process per engine, shared by every session.

espeak-ng and piper are GPL-3.0, so voxloop never loads them itself: each runs in its own process
(:mod:`._speech_worker`), started on first use (or by :func:`preload_speech_worker`) and shared by all the
sessions of this Python process. Requests are multiplexed over the worker's stdin/stdout by id and their
answers stream back chunk by chunk; a request can be cancelled without stopping the worker; if the worker
dies, its requests in flight fail with :class:`SpeechWorkerError` and the next request starts a new one.
Everything here uses asyncio subprocess streams, so nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import struct
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...pipeline import TaskSet

logger = logging.getLogger("voxloop.tts")

# The worker runs from its file, not with ``-m``: importing the voxloop package there would only slow its
# start. It imports nothing from voxloop, so the protocol constants are repeated here (a test checks them).
_WORKER_SCRIPT = str(Path(__file__).with_name("_speech_worker.py"))
HEADER = struct.Struct("<BII")
SYNTH, CANCEL = 1, 2
READY, AUDIO, WORD, DONE, ERROR = 16, 17, 18, 19, 20
_START_TIMEOUT_SECS = 60.0
_STREAM_LIMIT = 1 << 20


class SpeechWorkerError(RuntimeError):
    """A request failed in the worker, or the worker could not start or died."""


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker said when it was ready."""

    engine: str
    sample_rate: int
    load_secs: float
    pid: int
    start_secs: float  # from spawning the process to its READY, seen from here


@dataclass(frozen=True)
class WordMark:
    """The word at characters ``[start, end)`` of the request's text starts at ``sample`` of its audio."""

    sample: int
    start: int
    end: int


SpeechEvent = bytes | WordMark

_END = object()


class SpeechRequest:
    """One synthesis in flight: iterate it for audio (bytes) and word marks, in order.

    Leaving ``async with`` (or :meth:`cancel`) before the end cancels the request in the worker.
    """

    def __init__(self, worker: SpeechWorker, request_id: int) -> None:
        self._worker = worker
        self.id = request_id
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self.done = False
        self.samples = 0
        #: Once cancelled: the worker's final word on it, ``{"samples", "cancelled"}`` (samples it made).
        self.cancel_acknowledged: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def _deliver(self, item: Any) -> None:
        self._events.put_nowait(item)

    async def __aenter__(self) -> SpeechRequest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()

    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[SpeechEvent]:
        while not self.done:
            item = await self._events.get()
            if item is _END:
                self.done = True
                return
            if isinstance(item, SpeechWorkerError):
                self.done = True
                raise item
            if isinstance(item, bytes):
                self.samples += len(item) // 2
            yield item

    def cancel(self) -> None:
        """Stop this request (no-op once finished)."""
        if not self.done:
            self.done = True
            self._worker._cancel(self.id)


class SpeechWorker:
    """A client for one engine worker process (see :func:`shared_speech_worker`)."""

    def __init__(self, engine: str, args: Sequence[str] = ()) -> None:
        self.engine = engine
        self.args = tuple(args)
        self._proc: asyncio.subprocess.Process | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._info: WorkerInfo | None = None
        self._tasks = TaskSet(f"tts-{self.engine}")  # the running process's stderr drain and answer reader
        self._pending: dict[int, SpeechRequest] = {}
        self._cancelling: dict[int, SpeechRequest] = {}  # cancelled, until the worker's DONE or ERROR
        self._ids = itertools.count(1)
        self._starting: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self.starts = 0  # how many processes this client has started (restarts included)

    @property
    def info(self) -> WorkerInfo | None:
        """The running worker's details, or None when none runs."""
        return self._info if self.running else None

    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.returncode is None and self._loop is _running_loop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    async def start(self) -> WorkerInfo:
        """Start the worker if it is not running (waits for it to be ready); return its details."""
        loop = asyncio.get_running_loop()
        if self._starting is None or self._lock_loop is not loop:
            if self._proc is not None and self._loop is not loop:
                self._abandon()
            self._starting, self._lock_loop = asyncio.Lock(), loop
        async with self._starting:
            if self.running and self._info is not None:
                return self._info
            await self._shutdown_dead()
            return await self._spawn()

    async def _spawn(self) -> WorkerInfo:
        # -P: the script's folder (voxloop's own espeak.py, piper.py) must not shadow the engines' packages.
        command = [sys.executable, "-P", _WORKER_SCRIPT, "--engine", self.engine, *self.args]
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_STREAM_LIMIT,
            # Its own session: a Ctrl-C in the terminal is the server's to handle (it closes the worker);
            # if this process dies instead, the worker sees stdin close and exits.
            start_new_session=True,
        )
        self._proc, self._loop = proc, asyncio.get_running_loop()
        self.starts += 1
        assert proc.stdout is not None and proc.stderr is not None
        self._tasks = TaskSet(f"tts-{self.engine}")
        self._tasks.spawn(self._drain_stderr(proc.stderr), f"tts-{self.engine}::stderr")
        try:
            async with asyncio.timeout(_START_TIMEOUT_SECS):
                kind, _, payload = await _read_frame(proc.stdout)
        except (asyncio.IncompleteReadError, TimeoutError) as exc:
            await self._kill()
            raise SpeechWorkerError(f"the {self.engine} speech worker did not start") from exc
        if kind != READY:
            await self._kill()
            raise SpeechWorkerError(f"the {self.engine} speech worker failed to start: {payload.decode()}")
        data = json.loads(payload)
        self._info = WorkerInfo(
            engine=self.engine,
            sample_rate=int(data["sample_rate"]),
            load_secs=float(data["load_secs"]),
            pid=proc.pid,
            start_secs=time.perf_counter() - started,
        )
        self._tasks.spawn(self._read_answers(proc), f"tts-{self.engine}::reader")
        logger.info(
            "%s speech worker ready (pid %d, %.2f s, %d Hz)",
            self.engine,
            proc.pid,
            self._info.start_secs,
            self._info.sample_rate,
        )
        return self._info

    async def synthesize(self, text: str, settings: dict[str, Any] | None = None) -> SpeechRequest:
        """Send ``text`` to the worker (starting it if needed); iterate the result for its events."""
        await self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        request = SpeechRequest(self, next(self._ids))
        self._pending[request.id] = request
        payload = json.dumps({"text": text, "settings": settings or {}}).encode()
        try:
            proc.stdin.write(HEADER.pack(SYNTH, request.id, len(payload)) + payload)
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(request.id, None)
            raise SpeechWorkerError(f"the {self.engine} speech worker is gone: {exc}") from exc
        except BaseException:
            request.cancel()
            raise
        return request

    def _cancel(self, request_id: int) -> None:
        request = self._pending.pop(request_id, None)
        if request is None:
            return
        self._cancelling[request_id] = request
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None or not self.running:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            proc.stdin.write(HEADER.pack(CANCEL, request_id, 0))  # tiny: no drain needed

    async def _read_answers(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                kind, request_id, payload = await _read_frame(proc.stdout)
                request = self._pending.get(request_id)
                if request is None:  # cancelled: its remaining answers are dropped
                    if kind in (DONE, ERROR) and (cancelled := self._cancelling.pop(request_id, None)):
                        answer = json.loads(payload) if kind == DONE else {"error": payload.decode()}
                        _resolve(cancelled.cancel_acknowledged, answer)
                    continue
                if kind == AUDIO:
                    request._deliver(payload)
                elif kind == WORD:
                    mark = json.loads(payload)
                    request._deliver(WordMark(int(mark["sample"]), int(mark["start"]), int(mark["end"])))
                elif kind == DONE:
                    del self._pending[request_id]
                    request._deliver(_END)
                elif kind == ERROR:
                    del self._pending[request_id]
                    request._deliver(SpeechWorkerError(f"{self.engine}: {payload.decode(errors='replace')}"))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:  # a garbled answer: the stream cannot be trusted any more
            logger.exception(
                "%s speech worker (pid %d) sent an answer that cannot be read", self.engine, proc.pid
            )
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        code = await proc.wait()
        if self._closing:
            self._fail_pending(f"the {self.engine} speech worker was stopped")
            return
        logger.error("%s speech worker (pid %d) exited with code %s", self.engine, proc.pid, code)
        self._fail_pending(f"the {self.engine} speech worker exited (code {code})")

    def _fail_pending(self, message: str) -> None:
        pending, self._pending = self._pending, {}
        for request in pending.values():
            request._deliver(SpeechWorkerError(message))
        cancelling, self._cancelling = self._cancelling, {}
        for request in cancelling.values():
            _resolve(request.cancel_acknowledged, {"error": message})

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            logger.debug("%s worker: %s", self.engine, line.decode(errors="replace").rstrip())

    async def _shutdown_dead(self) -> None:
        """Forget a worker that has exited (its tasks are finished or finishing)."""
        if self._proc is not None:
            await self._kill()

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        tasks, self._tasks = self._tasks, TaskSet(f"tts-{self.engine}")
        self._info = None
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
        await tasks.cancel_and_wait()
        self._fail_pending(f"the {self.engine} speech worker was stopped")

    def _abandon(self) -> None:
        """The worker belongs to an event loop that is gone: end the process without that loop."""
        proc, self._proc = self._proc, None
        self._tasks, self._info, self._pending, self._cancelling = TaskSet(f"tts-{self.engine}"), None, {}, {}
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)

    async def aclose(self) -> None:
        """Stop the worker: close its stdin (it exits), kill it if it lingers."""
        proc = self._proc
        if proc is None:
            return
        if self._loop is not _running_loop():
            self._abandon()
            return
        self._closing = True
        if proc.stdin is not None and proc.returncode is None:
            proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await proc.wait()
        await self._kill()
        self._closing = False


def _resolve(future: asyncio.Future[dict[str, Any]], answer: dict[str, Any]) -> None:
    if not future.done():
        future.set_result(answer)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _read_frame(stream: asyncio.StreamReader) -> tuple[int, int, bytes]:
    kind, request_id, length = HEADER.unpack(await stream.readexactly(HEADER.size))
    payload = await stream.readexactly(length) if length else b""
    return kind, request_id, payload


_workers: dict[tuple[str, tuple[str, ...]], SpeechWorker] = {}


def shared_speech_worker(engine: str, args: Sequence[str] = ()) -> SpeechWorker:
    """The process-wide worker client for ``engine`` (``"espeak"`` or ``"piper"``) and these arguments."""
    key = (engine, tuple(args))
    worker = _workers.get(key)
    if worker is None:
        worker = _workers[key] = SpeechWorker(engine, args)
    return worker


async def preload_speech_worker(engine: str, args: Sequence[str] = ()) -> WorkerInfo:
    """Start the shared worker now (e.g. at server start) instead of on the first request."""
    logger.info("starting the %s speech worker...", engine)
    return await shared_speech_worker(engine, args).start()


def speech_worker_queue_depths() -> dict[str, int]:
    """Requests queued or running per engine in this process's shared workers (for monitoring)."""
    depths: dict[str, int] = {}
    for (engine, _args), worker in _workers.items():
        depths[engine] = depths.get(engine, 0) + len(worker._pending)
    return depths


async def close_speech_workers() -> None:
    """Stop every shared worker (at shutdown; tests call it between event loops)."""
    workers = list(_workers.values())
    _workers.clear()
    for worker in workers:
        await worker.aclose()
