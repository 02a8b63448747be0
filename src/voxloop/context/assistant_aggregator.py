"""The assistant aggregator: writes what the bot actually said, and its function calls, into the context.

It sits after the output transport, so text reaches it only once its audio has been sent: on an
interruption the output transport drops everything still queued, and what was aggregated so far is
exactly what was played. It passes every frame on; it only listens.

Text: ``TTSTextFrame``s (spoken, joined with spaces), ``LLMTextFrame``s that were not spoken (joined as
they are: they carry their own spaces) and ``AggregatedTextFrame``s that will not be spoken. An
``AggregatedTextFrame`` with ``will_be_spoken`` and ``AggregatedTextProgressFrame`` only announce what is
about to be said, and are ignored. ``LLMFullResponseStartFrame`` opens a reply, ``LLMFullResponseEndFrame``
commits it; ``TTSStartedFrame`` / ``TTSStoppedFrame`` with no LLM reply open frame a ``TTSSpeakFrame``.

Function calls (OpenAI shape): ``FunctionCallInProgressFrame`` adds an assistant message with one
``tool_calls`` entry and its tool message "IN_PROGRESS"; a result replaces that content with the JSON
result, a cancel with "CANCELLED". The two messages are always added together, so the context never
holds a tool call without its answer. The calls of one LLM response (``FunctionCallsStartedFrame``) form
a batch: once all are settled the context is pushed upstream to the LLM once (unless every result said
``run_llm=False``, or the user is speaking: then the user's turn runs the LLM with the results in).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..frames import (
    AggregatedTextFrame,
    AggregatedTextProgressFrame,
    AssistantTurnStoppedFrame,
    CancelFrame,
    EndFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallsStartedFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TextFrame,
    TranscriptionFrame,
    TranslationFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from ..pipeline import UPSTREAM, FrameDirection, FrameProcessor, TaskSet
from ..turns.params import AssistantAggregatorParams
from .context import LLMContext, Message

logger = logging.getLogger("voxloop.context")

IN_PROGRESS = "IN_PROGRESS"
CANCELLED = "CANCELLED"
COMPLETED = "COMPLETED"

# Results that overtook their call's in-progress frame; bounded so a lost frame cannot grow it.
_MAX_EARLY = 64


@dataclass
class _Batch:
    """The function calls of one LLM response."""

    ids: set[str]
    response: int | None = None  # the reply whose InProgress frames carried them
    results: dict[str, bool | None] = field(default_factory=dict)  # id -> run_llm wish
    cancelled: set[str] = field(default_factory=set)
    hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        return all(i in self.results or i in self.cancelled for i in self.ids)

    def wants_llm(self) -> bool:
        return any(wish is not False for wish in self.results.values())


class LLMAssistantAggregator(FrameProcessor):
    """Records the bot's side of the conversation, as heard, into ``context``.

    Events: ``on_assistant_turn_started()``, ``on_assistant_turn_stopped(text, interrupted)`` (text is
    what was played; fired when there was text or the reply was interrupted).
    """

    def __init__(
        self,
        context: LLMContext,
        params: AssistantAggregatorParams | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.context = context
        self.params = params or AssistantAggregatorParams()
        self._opened_by: str | None = None  # "llm", "tts" or "text" (text with no opening frame)
        # The text since the last flush, as pieces: joined once at the flush, since a reply comes a
        # token at a time and growing one string would copy it all on every token.
        self._buffer: list[str] = []
        self._flushed: list[str] = []  # parts of this turn already written (before a tool call)
        self._response = 0  # sequence number of LLM replies
        self._batches: list[_Batch] = []
        self._settled_early: dict[str, str] = {}  # tool_call_id -> final content, settled before InProgress
        self._rerun_at_response_end = False
        self._user_speaking = False
        self._hook_tasks = TaskSet(self)
        self._register_event_handler("on_assistant_turn_started")
        self._register_event_handler("on_assistant_turn_stopped")

    @property
    def turn_open(self) -> bool:
        return self._opened_by is not None

    @property
    def pending_function_calls(self) -> int:
        return sum(len(b.ids) - len(b.results) - len(b.cancelled) for b in self._batches)

    # -- frames ----------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if direction is UPSTREAM:
            return
        if isinstance(frame, LLMFullResponseStartFrame):
            await self._response_started()
        elif isinstance(frame, LLMFullResponseEndFrame):
            await self._response_ended()
        elif isinstance(frame, TTSStartedFrame):
            if self._opened_by is None:
                await self._open("tts")
        elif isinstance(frame, TTSStoppedFrame):
            if self._opened_by in ("tts", "text"):
                text = await self._commit(interrupted=False)
                await self._reply_over(text, interrupted=False)
        elif isinstance(frame, TextFrame):
            await self._text(frame)
        elif isinstance(frame, AggregatedTextProgressFrame):
            pass  # announces progress; the TTSTextFrames carry the words
        elif isinstance(frame, InterruptionFrame):
            self._rerun_at_response_end = False
            if self._opened_by is not None:
                text = await self._commit(interrupted=True)
                await self._reply_over(text, interrupted=True)
        elif isinstance(frame, FunctionCallsStartedFrame):
            self._batches.append(_Batch(ids={call.tool_call_id for call in frame.function_calls}))
        elif isinstance(frame, FunctionCallInProgressFrame):
            await self._call_in_progress(frame)
        elif isinstance(frame, FunctionCallResultFrame):
            await self._call_result(frame)
        elif isinstance(frame, FunctionCallCancelFrame):
            await self._call_cancelled(frame)
        elif isinstance(frame, UserStartedSpeakingFrame):
            self._user_speaking = True
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._user_speaking = False
        elif isinstance(frame, EndFrame | CancelFrame) and self._opened_by is not None:
            await self._commit(interrupted=isinstance(frame, CancelFrame))

    # -- text --------------------------------------------------------------------------------------

    async def _text(self, frame: TextFrame) -> None:
        if isinstance(frame, TranscriptionFrame | InterimTranscriptionFrame | TranslationFrame):
            return
        if not frame.append_to_context or not frame.text:
            return
        if (
            isinstance(frame, AggregatedTextFrame)
            and not isinstance(frame, TTSTextFrame)
            and frame.will_be_spoken
        ):
            return  # an announcement: the TTSTextFrames will follow as it is played
        if self._opened_by is None:
            await self._open("text")
        buffer = self._buffer
        joins_words = not frame.includes_inter_frame_spaces and buffer
        if joins_words and not buffer[-1][-1].isspace() and not frame.text[0].isspace():
            buffer.append(" ")
        buffer.append(frame.text)

    async def _open(self, by: str) -> None:
        self._opened_by = by
        self._buffer = []
        self._flushed = []
        await self._call_event_handler("on_assistant_turn_started")

    async def _response_started(self) -> None:
        self._response += 1
        if self._opened_by == "llm":
            text = await self._commit(interrupted=False)  # a reply that never ended
            await self._reply_over(text, interrupted=False)
        if self._opened_by in ("tts", "text"):
            self._opened_by = "llm"  # the TTS announced this reply before its start frame came
        else:
            await self._open("llm")

    async def _response_ended(self) -> None:
        text = await self._commit(interrupted=False) if self._opened_by is not None else ""
        if self._rerun_at_response_end:
            self._rerun_at_response_end = False
            await self._push_context_to_llm()
        elif not any(not batch.settled for batch in self._batches):
            await self._reply_over(text, interrupted=False)

    def _flush_text(self) -> None:
        """Write the text so far (before a tool call, so the context keeps the order things happened)."""
        text = "".join(self._buffer).strip()
        self._buffer = []
        if text:
            self.context.add_message({"role": "assistant", "content": text})
            self._flushed.append(text)

    async def _commit(self, *, interrupted: bool) -> str:
        """Close the turn: store its text, fire the event; returns the whole turn's text."""
        self._flush_text()
        text = " ".join(self._flushed)
        self._flushed = []
        self._opened_by = None
        if text or interrupted:
            await self._call_event_handler("on_assistant_turn_stopped", text, interrupted)
        return text

    async def _reply_over(self, text: str, *, interrupted: bool) -> None:
        await self.push_frame(AssistantTurnStoppedFrame(text=text, interrupted=interrupted), UPSTREAM)

    # -- function calls ----------------------------------------------------------------------------

    def _batch_of(self, tool_call_id: str) -> _Batch | None:
        for batch in self._batches:
            if tool_call_id in batch.ids:
                return batch
        return None

    async def _call_in_progress(self, frame: FunctionCallInProgressFrame) -> None:
        call_id = frame.tool_call_id
        batch = self._batch_of(call_id)
        response = self._response if self._opened_by == "llm" else None
        if batch is None:  # no FunctionCallsStartedFrame: group the calls of the same reply
            batch = next((b for b in self._batches if b.response == response and response is not None), None)
            if batch is None:
                batch = _Batch(ids=set())
                self._batches.append(batch)
            batch.ids.add(call_id)
        if batch.response is None:
            batch.response = response
        self._flush_text()
        arguments = json.dumps(dict(frame.arguments), ensure_ascii=False, default=str)
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": frame.function_name, "arguments": arguments},
        }
        content = self._settled_early.pop(call_id, IN_PROGRESS)
        self.context.add_messages(
            [
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call_id, "content": content},
            ]
        )
        if content != IN_PROGRESS:
            await self._maybe_batch_done(batch)

    async def _call_result(self, frame: FunctionCallResultFrame) -> None:
        properties = frame.properties
        wish = frame.run_llm
        if properties is not None and properties.run_llm is not None:
            wish = properties.run_llm
        content = (
            COMPLETED if frame.result is None else json.dumps(frame.result, ensure_ascii=False, default=str)
        )
        batch = self._batch_of(frame.tool_call_id)
        if batch is not None:
            batch.results[frame.tool_call_id] = wish
            if properties is not None and properties.on_context_updated is not None:
                batch.hooks.append(properties.on_context_updated)
        await self._settle(frame.tool_call_id, content, batch)

    async def _call_cancelled(self, frame: FunctionCallCancelFrame) -> None:
        batch = self._batch_of(frame.tool_call_id)
        if batch is not None:
            batch.cancelled.add(frame.tool_call_id)
        await self._settle(frame.tool_call_id, CANCELLED, batch)

    async def _settle(self, call_id: str, content: str, batch: _Batch | None) -> None:
        message = self._tool_message(call_id)
        if message is None:
            # Its in-progress frame is still on its way (a cancel is a system frame and overtakes it).
            if len(self._settled_early) >= _MAX_EARLY:
                self._settled_early.pop(next(iter(self._settled_early)))
            self._settled_early[call_id] = content
            return
        message["content"] = content
        if batch is not None:
            await self._maybe_batch_done(batch)

    def _tool_message(self, call_id: str) -> Message | None:
        for message in reversed(self.context.messages):
            if message.get("role") == "tool" and message.get("tool_call_id") == call_id:
                return message
        return None

    async def _maybe_batch_done(self, batch: _Batch) -> None:
        if not batch.settled or any(self._tool_message(i) is None for i in batch.ids):
            return
        if batch in self._batches:
            self._batches.remove(batch)
        for hook in batch.hooks:
            self._run_hook(hook)
        run = self.params.run_llm_after_function_calls and batch.wants_llm() and not self._user_speaking
        if run:
            if self._opened_by == "llm" and batch.response == self._response:
                self._rerun_at_response_end = True  # the reply that asked is still playing: after it
            else:
                await self._push_context_to_llm()
        elif self._opened_by is None and not self._batches:
            await self._reply_over("", interrupted=False)

    async def _push_context_to_llm(self) -> None:
        await self.push_frame(LLMContextFrame(context=self.context), UPSTREAM)

    def _run_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            try:
                await hook()
            except Exception:
                logger.exception("%s: on_context_updated hook failed", self)

        self._hook_tasks.spawn(run(), f"{self.name}::on_context_updated")

    async def cleanup(self) -> None:
        await self._hook_tasks.cancel_and_wait()
        await super().cleanup()
