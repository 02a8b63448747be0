"""Observers watch every hop of every frame without ever slowing the pipeline down."""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..frames import Frame
from ._async import Mailbox, TaskSet
from .clock import Clock

if TYPE_CHECKING:
    from .processor import FrameDirection, FrameProcessor

logger = logging.getLogger("voxloop")


@dataclass(slots=True)
class FramePushed:
    """One hop: ``source`` pushed ``frame`` to ``destination`` at ``timestamp`` (clock ns)."""

    source: FrameProcessor
    destination: FrameProcessor
    frame: Frame
    direction: FrameDirection
    timestamp: int


class BaseObserver:
    """Override the hooks you need. They run in the observer's own task, in push order.

    A frame is seen once per hop, so an observer that acts once per frame should remember which
    frames it handled: :class:`SeenFrames` does that without growing over a long call.

    Set :attr:`frame_types` (on the class or the instance, before the observer is added to a
    task) to the frame types it cares about: the others are skipped at the push, costing
    nothing, instead of being queued for it only to be ignored.
    """

    #: Frame types (and their subclasses) this observer is shown; None shows it every frame.
    frame_types: tuple[type[Frame], ...] | None = None

    async def on_push_frame(self, data: FramePushed) -> None:
        """A frame moved from one processor to the next."""

    async def on_pipeline_started(self) -> None:
        """The StartFrame reached the end of the pipeline."""

    async def on_pipeline_finished(self) -> None:
        """The pipeline ended (End, Stop or Cancel); called after every earlier push was seen."""

    def take_over(self) -> BaseObserver | None:
        """Called as the observer is added to a task; returns one it replaces there, if any.

        The task drops that one at once (even while running), so the two never both report.
        """
        return None


class SeenFrames:
    """Remembers which frames were already handled, for as long as those frames exist.

    Entries are weak references, so a frame is forgotten when it is garbage: memory stays
    proportional to the frames in flight, not to the length of the call.
    """

    def __init__(self) -> None:
        self._seen: weakref.WeakSet[Frame] = weakref.WeakSet()

    def first_sight(self, frame: Frame) -> bool:
        """True the first time ``frame`` is passed in, False afterwards."""
        if frame in self._seen:
            return False
        self._seen.add(frame)
        return True

    def __len__(self) -> int:
        return len(self._seen)


class _ObserverFeed:
    """Hands events to one observer in order through a mailbox drained by the observer's task."""

    def __init__(self, observer: BaseObserver) -> None:
        self.observer = observer
        types = observer.frame_types
        self.frame_types = tuple(types) if types is not None else None  # a list works too
        self.events: Mailbox[FramePushed | str] = Mailbox()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name=f"observer::{type(self.observer).__name__}")

    def wants(self, frame_type: type[Frame]) -> bool:
        return self.frame_types is None or issubclass(frame_type, self.frame_types)

    def put(self, event: FramePushed | str) -> None:
        self.events.put(event)

    async def _drain(self) -> None:
        events, observer = self.events, self.observer
        while True:
            if not events:
                await events.wait_for_item()
                continue
            event = events.pop()
            try:
                if isinstance(event, FramePushed):
                    await observer.on_push_frame(event)
                elif event == "started":
                    await observer.on_pipeline_started()
                elif event == "finished":
                    await observer.on_pipeline_finished()
                    return
            except Exception:
                logger.exception("observer %s failed", type(observer).__name__)

    async def finish(self, timeout: float) -> None:
        """Let the observer catch up (bounded), then stop its task."""
        task = self._task
        if task is None:
            return
        self.put("finished")
        _done, pending = await asyncio.wait({task}, timeout=timeout)
        if pending:
            logger.warning("observer %s lagging at the end; stopping it", type(self.observer).__name__)
            task.cancel()
            await asyncio.wait(pending)


class ObserverHub:
    """The one tap every processor calls on each push; fans out to observers and the idle watch.

    ``on_push`` is synchronous and cheap: it notes activity for the idle timeout, and, if any
    observer wants the frame's type, stamps the time and appends one event per such observer.
    Both answers are cached per frame class, so a hop costs one dict lookup when nobody watches.
    Observers run in their own tasks and may lag, never block.
    """

    def __init__(self, clock: Clock, activity_types: tuple[type[Frame], ...] = ()) -> None:
        self._clock = clock
        self._feeds: list[_ObserverFeed] = []
        self._activity_types = activity_types
        # Frame class -> (is it activity for the idle timeout, the mailboxes of the observers that want it).
        self._routes: dict[type[Frame], tuple[bool, tuple[Mailbox[FramePushed | str], ...]]] = {}
        self.last_activity_ns = clock.now_ns()
        self._running = False
        self._retiring = TaskSet(self)  # feeds dropped while running, finishing

    @property
    def observers(self) -> list[BaseObserver]:
        return [feed.observer for feed in self._feeds]

    def add(self, observer: BaseObserver) -> None:
        replaced = observer.take_over()
        if replaced is not None:
            self._retire(replaced)
        feed = _ObserverFeed(observer)
        self._feeds.append(feed)
        self._routes.clear()
        if self._running:
            feed.start()

    async def remove(self, observer: BaseObserver) -> None:
        for feed in self._feeds:
            if feed.observer is observer:
                self._feeds.remove(feed)
                self._routes.clear()
                await feed.finish(timeout=1.0)
                return

    def _retire(self, observer: BaseObserver) -> None:
        for feed in self._feeds:
            if feed.observer is observer:
                self._feeds.remove(feed)
                self._routes.clear()
                self._retiring.spawn(feed.finish(timeout=1.0), f"observer::{type(observer).__name__}::retire")
                return

    def start(self) -> None:
        self._running = True
        for feed in self._feeds:
            feed.start()

    def on_push(
        self,
        source: FrameProcessor,
        destination: FrameProcessor,
        frame: Frame,
        direction: FrameDirection,
    ) -> None:
        # Most hops carry neither an idle-timeout frame nor go to an observer: read no clock then.
        try:
            activity, mailboxes = self._routes[type(frame)]
        except KeyError:
            activity, mailboxes = self._route(type(frame))
        if activity:
            self.last_activity_ns = self._clock.now_ns()
        if mailboxes:
            event = FramePushed(source, destination, frame, direction, self._clock.now_ns())
            for mailbox in mailboxes:
                mailbox.put(event)

    def _route(self, frame_type: type[Frame]) -> tuple[bool, tuple[Mailbox[FramePushed | str], ...]]:
        activity = issubclass(frame_type, self._activity_types)
        mailboxes = tuple(feed.events for feed in self._feeds if feed.wants(frame_type))
        self._routes[frame_type] = route = (activity, mailboxes)
        return route

    def pipeline_started(self) -> None:
        for feed in self._feeds:
            feed.put("started")

    async def finish(self, timeout: float = 5.0) -> None:
        self._running = False
        await asyncio.gather(*(feed.finish(timeout) for feed in self._feeds))
        await self._retiring.cancel_and_wait(grace_secs=timeout)
