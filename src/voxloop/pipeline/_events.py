"""Named events that users attach handlers to with a decorator."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from ._async import TaskSet

logger = logging.getLogger("voxloop")

Handler = TypeVar("Handler", bound=Callable[..., Any])


class EventSource:
    """Something with named events (``on_...``) that users can attach handlers to.

    A class registers the events it emits; users attach with ``@obj.event_handler("on_x")``.
    Handlers get the object first, then the event's arguments, and may be plain functions or
    coroutines. An event registered ``sync=True`` runs its handlers inline (the emitter waits);
    others run each call in a task of their own so a slow handler never stalls the pipeline.
    Those tasks are owned here and finished by :meth:`_finish_event_handlers`. A handler's
    exception is logged, never propagated to the emitter.
    """

    def __init__(self) -> None:
        self._event_handlers: dict[str, list[Callable[..., Any]]] = {}
        self._sync_events: set[str] = set()
        self._handler_tasks = TaskSet(self)
        self._finishing_handlers: set[asyncio.Task[Any]] = set()

    def _register_event_handler(self, event: str, *, sync: bool = False) -> None:
        if event in self._event_handlers:
            raise ValueError(f"event {event!r} is registered twice on {self!r}")
        self._event_handlers[event] = []
        if sync:
            self._sync_events.add(event)

    @property
    def event_names(self) -> list[str]:
        """The events this object emits."""
        return list(self._event_handlers)

    def add_event_handler(self, event: str, handler: Callable[..., Any]) -> None:
        """Call ``handler(self, *args)`` whenever ``event`` fires."""
        handlers = self._event_handlers.get(event)
        if handlers is None:
            known = ", ".join(sorted(self._event_handlers)) or "none"
            raise ValueError(f"{type(self).__name__} has no event {event!r} (its events: {known})")
        handlers.append(handler)

    def remove_event_handler(self, event: str, handler: Callable[..., Any]) -> None:
        """Detach a handler added before."""
        self._event_handlers.get(event, []).remove(handler)

    def event_handler(self, event: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add_event_handler`."""

        def attach(handler: Handler) -> Handler:
            self.add_event_handler(event, handler)
            return handler

        return attach

    def has_event_handlers(self, event: str) -> bool:
        """Whether anybody listens to ``event`` (lets emitters skip building arguments)."""
        return bool(self._event_handlers.get(event))

    async def _call_event_handler(self, event: str, *args: Any) -> None:
        handlers = self._event_handlers.get(event)
        if not handlers:
            return
        if event in self._sync_events:
            for handler in list(handlers):
                await self._run_handler(event, handler, args)
            return
        for handler in list(handlers):
            self._handler_tasks.spawn(self._run_handler(event, handler, args), f"{self!r}::{event}")

    async def _run_handler(self, event: str, handler: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            result = handler(self, *args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("%r: handler %s of %s failed", self, handler.__qualname__, event)

    async def _finish_event_handlers(self, timeout: float = 5.0) -> None:
        """Wait for running handlers (bounded), then cancel whatever is left.

        A handler may call this (one that closes its transport): it never waits for itself, nor
        for the other handlers doing the same, which wait for the rest in their turn; waiting
        for each other would only end when the grace period does.
        """
        current = asyncio.current_task()
        if current is None or current not in self._handler_tasks:
            await self._handler_tasks.cancel_and_wait(grace_secs=timeout)
            return
        self._finishing_handlers.add(current)
        try:
            await self._handler_tasks.cancel_and_wait(grace_secs=timeout, spare=self._finishing_handlers)
        finally:
            self._finishing_handlers.discard(current)
