"""LLMService: the base of every chat LLM. It turns a context into a streamed response and runs tool calls.

A subclass implements one async generator, :meth:`LLMService.generate`, that yields what the model
produces: text deltas (``str``), complete tool calls (:class:`LLMToolCall`) and token usage
(:class:`~voxloop.frames.LLMTokenUsage`). The base does the rest, the same way for every provider:

- on every ``LLMContextFrame`` (from either direction: the assistant aggregator sends the context back up
  after function results) it pushes ``LLMFullResponseStartFrame``, one ``LLMTextFrame`` per delta and
  ``LLMFullResponseEndFrame`` downstream;
- metrics: TTFB (context taken up -> first token or tool call), processing time, token usage;
- ``LLMConfigureOutputFrame(skip_tts)`` marks the text frames that follow until it changes again;
- ``LLMUpdateSettingsFrame`` changes model, temperature, max tokens, ... for the next responses;
- an error is reported upstream (``ErrorFrame``, not fatal), the response is still closed, and the
  next context runs as usual;
- an interruption cancels the response in flight (the generator is closed, so is its HTTP stream);
- tool calls are announced and run by the :class:`~voxloop.services.functions.FunctionCallRunner`;
- ``LLMSpeculationFrame`` runs a response ahead of a turn that is not confirmed yet, on a task of its own,
  holding every frame it produces (and its tool calls) until "confirm" releases them in order; "drop", an
  interruption or a new context cancels it and discards what it held, so nothing of it is ever seen.

The settings and the function runner live in :class:`FunctionCallingService`, the base a speech-to-speech
service shares with the chat LLMs without taking on their one-response-per-context contract.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field, fields
from typing import Any

from ..frames import (
    ErrorCategory,
    ErrorFrame,
    Frame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMConfigureOutputFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMSpeculationFrame,
    LLMTextFrame,
    LLMTokenUsage,
    LLMUpdateSettingsFrame,
)
from ..pipeline import DOWNSTREAM, UPSTREAM, FrameDirection, FrameProcessor, TaskSet
from .functions import FunctionCallRunner, FunctionHandler, FunctionRegistration

logger = logging.getLogger("voxloop.services.llm")


@dataclass
class LLMToolCall:
    """A complete tool call from the model: its id, the function's name, and the arguments as JSON."""

    id: str
    name: str
    arguments: str = "{}"


#: What :meth:`LLMService.generate` yields.
LLMOutput = str | LLMToolCall | LLMTokenUsage


class LLMServiceError(Exception):
    """A failure the service can explain: ``str(error)`` is what the user and the client are told."""

    def __init__(self, message: str, category: ErrorCategory = ErrorCategory.UNKNOWN) -> None:
        super().__init__(message)
        self.category = category


@dataclass
class LLMSettings:
    """What a request is made with; ``None`` leaves a value to the server. ``extra``: provider-specific."""

    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes`` (unknown keys go to ``extra``; a None value in ``extra`` removes the key)."""
        known = {f.name for f in fields(self)} - {"extra"}
        for key, value in changes.items():
            if key in known:
                setattr(self, key, value)
            elif key == "extra" and isinstance(value, dict):
                self.extra.update(value)
            elif value is None:
                self.extra.pop(key, None)
            else:
                self.extra[key] = value


class FunctionCallingService(FrameProcessor):
    """What every model service that calls functions shares: the chat LLMs and speech-to-speech services.

    It holds the :class:`LLMSettings` (``model`` is also what metrics are attributed to) and the
    :class:`~voxloop.services.functions.FunctionCallRunner`, with the registration API on top of it. How
    a response is produced is up to the subclass (:class:`LLMService` streams one per context; a realtime
    service gets its responses from its own connection).

    Args:
        model: the model name. temperature, max_tokens: sampling settings (None = the server's default).
        run_in_parallel: run the function calls of one response at the same time (else one by one).
        function_call_timeout_secs: default timeout of a call (None = none); per function in
            :meth:`register_function`.
        name: for logs and metrics. queued: see :class:`~voxloop.pipeline.FrameProcessor`.
    """

    def __init__(
        self,
        *,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
        run_in_parallel: bool = True,
        function_call_timeout_secs: float | None = None,
        name: str | None = None,
        queued: bool = True,
    ) -> None:
        super().__init__(name=name, queued=queued)
        self.settings = LLMSettings(model=model, temperature=temperature, max_tokens=max_tokens)
        self.set_metrics_model(model)
        self._skip_tts: bool | None = None
        self._functions = FunctionCallRunner(
            self, run_in_parallel=run_in_parallel, timeout_secs=function_call_timeout_secs
        )

    def can_generate_metrics(self) -> bool:
        return True

    @property
    def model(self) -> str:
        return self.settings.model

    # -- functions ---------------------------------------------------------------------------

    def register_function(
        self,
        name: str | None,
        handler: FunctionHandler | None,
        *,
        cancel_on_interruption: bool = True,
        timeout_secs: float | None = None,
    ) -> None:
        """Let the model call ``name`` (None = any function without its own registration).

        ``handler``: ``async def handler(params: FunctionCallParams)`` that reports with
        ``await params.result_callback(result)``; None for a client-side function whose result comes
        back from the client (a ``FunctionCallResultFrame`` from upstream). ``cancel_on_interruption``:
        cancel the call when the user interrupts. ``timeout_secs``: cancel it after that long (default:
        the service's ``function_call_timeout_secs``).
        """
        self._functions.register(FunctionRegistration(name, handler, cancel_on_interruption, timeout_secs))

    def unregister_function(self, name: str | None) -> None:
        self._functions.unregister(name)

    def has_function(self, name: str) -> bool:
        """Whether a call of ``name`` would find a handler (its own or the catch-all)."""
        return self._functions.has_function(name)

    @property
    def function_runner(self) -> FunctionCallRunner:
        return self._functions

    async def close(self) -> None:
        """Release the client (connection pools...). Called from :meth:`cleanup`."""

    async def cleanup(self) -> None:
        await self._functions.cancel_all()
        await super().cleanup()
        await self.close()


@dataclass
class _Speculation:
    """A response run ahead of its turn: what it pushed so far, held until the turn is confirmed."""

    task: asyncio.Task[None] | None = None
    held: list[tuple[Frame, FrameDirection]] = field(default_factory=list)
    released: bool = False
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    context: Any = None


class LLMService(FunctionCallingService, ABC):
    """Base of the chat LLM services (queued: streaming a response never holds up other processors).

    Args: those of :class:`FunctionCallingService`; ``queued``: handle frames on the service's own task
    (the default).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spec: _Speculation | None = None  # the response running ahead of an unconfirmed turn
        self._spec_tasks = TaskSet(self)

    async def cleanup(self) -> None:
        await self._spec_tasks.cancel_and_wait()
        await super().cleanup()

    # -- what subclasses implement -----------------------------------------------------------

    @abstractmethod
    def generate(self, context: Any) -> AsyncGenerator[LLMOutput, None]:
        """Stream the response to ``context``: text deltas, complete tool calls, usage.

        An async generator. Raise :class:`LLMServiceError` for failures the user should hear about
        in plain words. It is closed early (``aclose``) when the response is interrupted.
        """

    # -- frames ------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, LLMSpeculationFrame):
            await self._speculation(frame)
        elif isinstance(frame, LLMContextFrame):
            await self._drop_speculation()
            await self.run_context(frame.context)
        elif isinstance(frame, LLMConfigureOutputFrame):
            self._skip_tts = frame.skip_tts
            await self.push_frame(frame, direction)
        elif isinstance(frame, LLMUpdateSettingsFrame):
            if frame.service is None or frame.service is self:
                self.update_settings(frame.settings)
            if frame.service is not self:
                await self.push_frame(frame, direction)
        elif isinstance(frame, FunctionCallResultFrame) and direction is DOWNSTREAM:
            if self._functions.accept_result_frame(frame):
                await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            await self._drop_speculation()
            await self._functions.interrupt()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    # -- speculation -------------------------------------------------------------------------------

    async def push_frame(self, frame: Frame, direction: FrameDirection = DOWNSTREAM) -> None:
        spec = self._spec
        if spec is not None and not spec.released and asyncio.current_task() is spec.task:
            spec.held.append((frame, direction))  # speculative output waits for the turn to be confirmed
            return
        await super().push_frame(frame, direction)

    async def _speculation(self, frame: LLMSpeculationFrame) -> None:
        if frame.action == "start":
            await self._drop_speculation()
            spec = _Speculation()
            self._spec = spec
            spec.task = self._spec_tasks.spawn(
                self._speculate(spec, frame.context), f"{self.name}::speculation"
            )
        elif frame.action == "confirm":
            await self._confirm_speculation(frame.context)
        elif frame.action == "drop":
            await self._drop_speculation()
        else:
            await self.push_error(f"{self.name}: unknown speculation action {frame.action!r}")

    async def _speculate(self, spec: _Speculation, context: Any) -> None:
        calls = await self.run_context(context, start_calls=False)
        await spec.confirmed.wait()  # a dropped speculation is cancelled here (or earlier)
        if calls:
            await self._functions.start_calls(((c.id, c.name, c.arguments) for c in calls), spec.context)
        if self._spec is spec:
            self._spec = None

    async def _confirm_speculation(self, context: Any) -> None:
        spec = self._spec
        if spec is None:
            logger.warning("%s: a speculation was confirmed that is not running", self)
            return
        spec.context = context
        # Release in order; frames the task pushes meanwhile join the end of the line.
        while spec.held:
            frame, direction = spec.held.pop(0)
            await super().push_frame(frame, direction)
        spec.released = True
        spec.confirmed.set()

    async def _drop_speculation(self) -> None:
        spec, self._spec = self._spec, None
        if spec is None:
            return
        spec.held.clear()
        if spec.task is not None and spec.task is not asyncio.current_task():
            spec.task.cancel()
            await asyncio.gather(spec.task, return_exceptions=True)
        spec.held.clear()

    def update_settings(self, changes: dict[str, Any]) -> None:
        """Change settings for the next responses (``model``, ``temperature``, ``max_tokens``...)."""
        self.settings.update(changes)
        self.set_metrics_model(self.settings.model)
        logger.debug("%s: settings now %s", self, self.settings)

    async def run_context(self, context: Any, *, start_calls: bool = True) -> list[LLMToolCall]:
        """Produce one response to ``context`` (what an ``LLMContextFrame`` triggers).

        Returns its tool calls; they are started here unless ``start_calls`` is False.
        """
        await self.start_ttfb_metrics()
        await self.start_processing_metrics()
        await self._push_response_frame(LLMFullResponseStartFrame())
        got_output = False
        tool_calls: list[LLMToolCall] = []
        try:
            async with aclosing(self.generate(context)) as stream:
                async for item in stream:
                    if isinstance(item, str):
                        if not item:
                            continue
                        if not got_output:
                            got_output = True
                            await self.stop_ttfb_metrics()
                        text = LLMTextFrame(item)
                        text.skip_tts = self._skip_tts
                        await self.push_frame(text)
                    elif isinstance(item, LLMToolCall):
                        if not got_output:
                            got_output = True
                            await self.stop_ttfb_metrics()
                        tool_calls.append(item)
                    elif isinstance(item, LLMTokenUsage):
                        await self.start_llm_usage_metrics(item)
        except Exception as exc:
            self._metrics.cancel_ttfb()
            await self._report_failure(exc)
            tool_calls = []  # a broken response's calls may be incomplete: never run them
        await self.stop_processing_metrics()
        await self._push_response_frame(LLMFullResponseEndFrame())
        if tool_calls and start_calls:
            await self._functions.start_calls(((c.id, c.name, c.arguments) for c in tool_calls), context)
        return tool_calls

    async def _push_response_frame(self, frame: LLMFullResponseStartFrame | LLMFullResponseEndFrame) -> None:
        frame.skip_tts = self._skip_tts
        await self.push_frame(frame)

    async def _report_failure(self, exc: Exception) -> None:
        if isinstance(exc, LLMServiceError):
            message, category = str(exc), exc.category
            logger.error("%s: %s", self, message)
        else:
            message, category = f"{type(exc).__name__}: {exc}", ErrorCategory.UNKNOWN
            logger.error("%s: the response failed: %r", self, exc, exc_info=exc)
        error = ErrorFrame(error=f"{self.name}: {message}", processor=self, exception=exc, category=category)
        await self._call_event_handler("on_error", error)
        await self.push_frame(error, UPSTREAM)
