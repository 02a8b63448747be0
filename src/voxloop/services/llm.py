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
- tool calls are announced and run by the :class:`~voxloop.services.functions.FunctionCallRunner`.

The settings and the function runner live in :class:`FunctionCallingService`, the base a speech-to-speech
service shares with the chat LLMs without taking on their one-response-per-context contract.
"""

from __future__ import annotations

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
    LLMTextFrame,
    LLMTokenUsage,
    LLMUpdateSettingsFrame,
)
from ..pipeline import DOWNSTREAM, UPSTREAM, FrameDirection, FrameProcessor
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


class LLMService(FunctionCallingService, ABC):
    """Base of the chat LLM services (queued: streaming a response never holds up other processors).

    Args: those of :class:`FunctionCallingService`; ``queued``: handle frames on the service's own task
    (the default).
    """

    # -- what subclasses implement -----------------------------------------------------------

    @abstractmethod
    def generate(self, context: Any) -> AsyncGenerator[LLMOutput, None]:
        """Stream the response to ``context``: text deltas, complete tool calls, usage.

        An async generator. Raise :class:`LLMServiceError` for failures the user should hear about
        in plain words. It is closed early (``aclose``) when the response is interrupted.
        """

    # -- frames ------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, LLMContextFrame):
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
            await self._functions.interrupt()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    def update_settings(self, changes: dict[str, Any]) -> None:
        """Change settings for the next responses (``model``, ``temperature``, ``max_tokens``...)."""
        self.settings.update(changes)
        self.set_metrics_model(self.settings.model)
        logger.debug("%s: settings now %s", self, self.settings)

    async def run_context(self, context: Any) -> None:
        """Produce one response to ``context`` (what an ``LLMContextFrame`` triggers)."""
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
        if tool_calls:
            await self._functions.start_calls(((c.id, c.name, c.arguments) for c in tool_calls), context)

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
