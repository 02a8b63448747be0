"""Function calling: the registry of functions an LLM may call, and the runner that executes the calls.

The LLM service owns one :class:`FunctionCallRunner`. When a response asks for calls, the runner announces
them (``FunctionCallsStartedFrame``, then one ``FunctionCallInProgressFrame`` per call, both ways) and runs
each handler in a task of its own, so a slow handler never holds up frames or audio. Every announced call
is settled exactly once, by one of:

- the handler's ``await params.result_callback(result)`` -> ``FunctionCallResultFrame`` (both ways);
- a ``FunctionCallResultFrame`` arriving from upstream (a client-side function answered by the RTVI client)
  -> that frame is passed on downstream, nothing new is pushed;
- the call's timeout -> a ``FunctionCallResultFrame`` whose result tells the LLM the call timed out;
- an interruption, for functions registered with ``cancel_on_interruption`` -> ``FunctionCallCancelFrame``;
- a handler that raises -> an ``ErrorFrame`` upstream and a result telling the LLM the call failed;
- an unknown function -> a result telling the LLM the function is not available.

Anything that tries to settle a call a second time (a late result) is ignored. The runner never edits the
context: the assistant aggregator writes calls and results into it from these frames.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..frames import (
    FunctionCallCancelFrame,
    FunctionCallFromLLM,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallResultProperties,
    FunctionCallsStartedFrame,
)
from ..pipeline import TaskSet

if TYPE_CHECKING:
    from .llm import FunctionCallingService

logger = logging.getLogger("voxloop.services.functions")

# How many settled call ids are remembered, to recognise (and drop) late client results.
_SETTLED_MEMORY = 256


class ResultCallback:
    """What ``params.result_callback`` is: ``await result_callback(result, properties=...)``."""

    def __init__(self, settle: Callable[[Any, FunctionCallResultProperties | None], Awaitable[None]]):
        self._settle = settle

    async def __call__(self, result: Any, *, properties: FunctionCallResultProperties | None = None) -> None:
        await self._settle(result, properties)


@dataclass
class FunctionCallParams:
    """What a function handler receives.

    ``arguments`` are the LLM's arguments, parsed from JSON. The handler reports its result with
    ``await params.result_callback(result, properties=FunctionCallResultProperties(run_llm=...))``;
    ``result`` should be JSON-serialisable (it is written into the context as the tool message).
    """

    function_name: str
    tool_call_id: str
    arguments: dict[str, Any]
    llm: FunctionCallingService
    context: Any
    result_callback: ResultCallback


FunctionHandler = Callable[[FunctionCallParams], Awaitable[None]]


@dataclass
class FunctionRegistration:
    """One registered function (``name`` None = catch-all; ``handler`` None = client-side)."""

    name: str | None
    handler: FunctionHandler | None
    cancel_on_interruption: bool = True
    timeout_secs: float | None = None


@dataclass(eq=False)
class _Call:
    """One call the LLM asked for, from announcement to settlement."""

    function_name: str
    tool_call_id: str
    arguments: dict[str, Any]
    context: Any
    registration: FunctionRegistration | None
    problem: str | None = None  # set when the arguments were not a JSON object
    settled: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    work: asyncio.Task[None] | None = None
    interrupted: bool = False

    @property
    def cancel_on_interruption(self) -> bool:
        return self.registration.cancel_on_interruption if self.registration else True


class FunctionCallRunner:
    """Registry and executor of function calls for one LLM service (see the module docstring)."""

    def __init__(
        self,
        service: FunctionCallingService,
        *,
        run_in_parallel: bool = True,
        timeout_secs: float | None = None,
    ) -> None:
        self._service = service
        self.run_in_parallel = run_in_parallel
        self.timeout_secs = timeout_secs
        self._functions: dict[str | None, FunctionRegistration] = {}
        self._calls: dict[str, _Call] = {}
        self._settled: deque[str] = deque(maxlen=_SETTLED_MEMORY)
        self._tasks = TaskSet(service)

    # -- registry ----------------------------------------------------------------------------

    def register(self, registration: FunctionRegistration) -> None:
        self._functions[registration.name] = registration

    def unregister(self, name: str | None) -> None:
        self._functions.pop(name, None)

    def has_function(self, name: str) -> bool:
        return name in self._functions or None in self._functions

    def registration(self, name: str) -> FunctionRegistration | None:
        return self._functions.get(name) or self._functions.get(None)

    @property
    def pending_calls(self) -> list[str]:
        """Tool call ids announced and not settled yet."""
        return list(self._calls)

    # -- running -----------------------------------------------------------------------------

    async def start_calls(self, calls: Iterable[tuple[str, str, str]], context: Any) -> None:
        """Announce and start ``(tool_call_id, name, arguments_json)`` calls of one response.

        Returns once the calls are announced; the handlers go on in the runner's own task, which an
        interruption of the caller does not cancel.
        """
        batch = [self._new_call(call_id, name, arguments, context) for call_id, name, arguments in calls]
        if not batch:
            return
        for call in batch:
            self._calls[call.tool_call_id] = call
        announced = asyncio.Event()
        self._own(self._run_batch(batch, announced), "function-calls")
        await announced.wait()

    def _new_call(self, call_id: str, name: str, arguments: str, context: Any) -> _Call:
        problem = None
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            parsed, problem = {}, f"the arguments were not valid JSON ({exc.msg})"
        if not isinstance(parsed, dict):
            parsed, problem = {}, "the arguments were not a JSON object"
        return _Call(name, call_id, parsed, context, self.registration(name), problem)

    def _own(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        return self._tasks.spawn(coro, f"{self._service.name}::{what}")

    async def _run_batch(self, batch: list[_Call], announced: asyncio.Event) -> None:
        service = self._service
        try:
            started = [
                FunctionCallFromLLM(c.function_name, c.tool_call_id, c.arguments, c.context) for c in batch
            ]
            await service.broadcast_frame(FunctionCallsStartedFrame, function_calls=started)
            for call in batch:
                await service.broadcast_frame(
                    FunctionCallInProgressFrame,
                    function_name=call.function_name,
                    tool_call_id=call.tool_call_id,
                    arguments=call.arguments,
                    cancel_on_interruption=call.cancel_on_interruption,
                )
        finally:
            announced.set()
        if self.run_in_parallel and len(batch) > 1:
            await asyncio.gather(*(self._run_call(call) for call in batch))
        else:
            for call in batch:
                await self._run_call(call)

    async def _run_call(self, call: _Call) -> None:
        name = call.function_name
        if call.settled:
            return
        if call.interrupted:
            await self._cancel(call)
            return
        if call.registration is None:
            await self._settle(call, {"error": f"The function '{name}' is not available."})
            return
        if call.problem is not None:
            await self._settle(call, {"error": f"The function '{name}' was not called: {call.problem}."})
            return
        timeout = call.registration.timeout_secs
        if timeout is None:
            timeout = self.timeout_secs
        work = call.work = asyncio.ensure_future(self._execute(call))
        work.set_name(f"{self._service.name}::function:{name}")
        timer = asyncio.ensure_future(self._service.clock.sleep(timeout)) if timeout is not None else None
        waiting = {work} if timer is None else {work, timer}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waiting:
                task.cancel()
            await asyncio.wait(waiting)
        if call.settled:
            return
        if timer is not None and timeout is not None and timer.done() and not timer.cancelled():
            logger.warning("%s: function %s timed out after %g s", self._service, name, timeout)
            await self._time_out(call, timeout)
        elif work.cancelled() or call.interrupted:
            await self._cancel(call)
        elif (exc := work.exception()) is not None:
            logger.error("%s: function %s failed: %r", self._service, name, exc, exc_info=exc)
            await self._service.push_error(f"{self._service.name}: function '{name}' failed: {exc}", exc)
            await self._settle(call, {"error": f"The function '{name}' failed: {exc}"})

    async def _execute(self, call: _Call) -> None:
        registration = call.registration
        assert registration is not None
        if registration.handler is not None:

            async def settle(result: Any, properties: FunctionCallResultProperties | None) -> None:
                await self._settle(call, result, properties)

            params = FunctionCallParams(
                function_name=call.function_name,
                tool_call_id=call.tool_call_id,
                arguments=call.arguments,
                llm=self._service,
                context=call.context,
                result_callback=ResultCallback(settle),
            )
            await registration.handler(params)
        # A client-side function, or a handler that hands its callback on: wait for the result.
        await call.done.wait()

    # -- settling ----------------------------------------------------------------------------

    def _mark_settled(self, call: _Call) -> bool:
        """Settle ``call`` once; False if it already was."""
        if call.settled:
            return False
        call.settled = True
        call.done.set()
        self._calls.pop(call.tool_call_id, None)
        self._settled.append(call.tool_call_id)
        return True

    async def _settle(
        self, call: _Call, result: Any, properties: FunctionCallResultProperties | None = None
    ) -> None:
        if call.interrupted or not self._mark_settled(call):
            logger.info(
                "%s: result of %s (%s) ignored: the call was already settled or cancelled",
                self._service,
                call.function_name,
                call.tool_call_id,
            )
            return
        await self._broadcast_result(call, result, properties)

    async def _time_out(self, call: _Call, timeout: float) -> None:
        # A result, not a cancel: it tells the LLM what happened, and it settles the call in the same
        # ordered stream as the other results of its batch (a cancel is a system frame and would overtake
        # them, settling the batch early and running the LLM before this result is in the context).
        if self._mark_settled(call):
            result = {"error": f"The function '{call.function_name}' timed out after {timeout:g} seconds."}
            await self._broadcast_result(call, result, None)

    async def _cancel(self, call: _Call) -> None:
        if self._mark_settled(call):
            await self._broadcast_cancel(call)

    async def _broadcast_result(
        self, call: _Call, result: Any, properties: FunctionCallResultProperties | None
    ) -> None:
        await self._service.broadcast_frame(
            FunctionCallResultFrame,
            function_name=call.function_name,
            tool_call_id=call.tool_call_id,
            arguments=call.arguments,
            result=result,
            run_llm=properties.run_llm if properties is not None else None,
            properties=properties,
        )

    async def _broadcast_cancel(self, call: _Call) -> None:
        await self._service.broadcast_frame(
            FunctionCallCancelFrame, function_name=call.function_name, tool_call_id=call.tool_call_id
        )

    # -- frames from the pipeline ------------------------------------------------------------

    def accept_result_frame(self, frame: FunctionCallResultFrame) -> bool:
        """A result coming down the pipeline (a client-side function's answer).

        Settles the pending call and returns True if the frame should be passed on; returns False for a
        result of a call that is already settled (timed out, cancelled, answered), which must be dropped.
        Results of calls this service never made pass on untouched.
        """
        call = self._calls.get(frame.tool_call_id)
        if call is None:
            if frame.tool_call_id in self._settled:
                logger.warning(
                    "%s: late result for %s (%s) ignored: the call was already settled",
                    self._service,
                    frame.function_name,
                    frame.tool_call_id,
                )
                return False
            return True
        self._mark_settled(call)
        work = call.work
        if work is not None and not work.done() and work is not asyncio.current_task():
            work.cancel()
        return True

    async def interrupt(self) -> None:
        """An interruption: cancel the calls whose functions say so; the others go on."""
        for call in list(self._calls.values()):
            if call.settled or not call.cancel_on_interruption:
                continue
            call.interrupted = True
            if call.work is not None and not call.work.done():
                call.work.cancel()  # its _run_call broadcasts the cancel

    async def cancel_all(self) -> None:
        """Stop every call and wait for the tasks (clean-up; nothing is pushed)."""
        await self._tasks.cancel_and_wait()
        for call in list(self._calls.values()):
            self._mark_settled(call)
