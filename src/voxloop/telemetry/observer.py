"""The per-session observer that turns frames into turns, service intervals and live figures.

It watches only the frames that mark a turn's or a service's boundary (speaking and VAD frames,
transcripts, LLM response start/end and its first text, TTS start/stop and its first audio, function
calls, metrics, interruptions, errors); every other frame is dismissed with one ``isinstance``. It acts
on a frame's first hop only (the one its producer pushed), so its timestamp is when it was made. It runs
in the observer's own task, so nothing it does is on the pipeline's path.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..frames import (
    AssistantTurnStoppedFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    ErrorFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    LLMTokenUsage,
    LLMUsageMetricsData,
    MetricsFrame,
    TranscriptionFinishedFrame,
    TranscriptionFrame,
    TTFBMetricsData,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from ..pipeline import BaseObserver, FrameDirection, FramePushed, SeenFrames
from ..services import FunctionCallingService, LLMService, STTService, TTSService
from ._turns import Interval, Turn

__all__ = ["TurnObserver", "TurnSink"]

#: Every frame type the observer acts on; the rest are skipped at once.
WATCHED: tuple[type[Frame], ...] = (
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    TranscriptionFrame,
    TranscriptionFinishedFrame,
    LLMFullResponseStartFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSAudioRawFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    AssistantTurnStoppedFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallCancelFrame,
    MetricsFrame,
    InterruptionFrame,
    ErrorFrame,
)


#: Speech segments (and transcripts) kept while waiting for a turn: bounded over a long call.
_MAX_PENDING = 64


class TurnSink(Protocol):
    """Where the observer reports (the session's telemetry: metrics and spans)."""

    def turn_finished(self, turn: Turn) -> None: ...
    def interval_finished(self, interval: Interval) -> None: ...
    def service_ttfb(self, service: str, model: str, seconds: float) -> None: ...
    def llm_usage(self, model: str, usage: LLMTokenUsage) -> None: ...
    def interruption(self) -> None: ...
    def error(self, frame: ErrorFrame) -> None: ...


class TurnObserver(BaseObserver):
    """Follows one session's turns and reports each finished turn and interval to ``sink``."""

    frame_types = WATCHED  # for a hub that can skip the frames an observer does not want

    def __init__(self, sink: TurnSink) -> None:
        self._sink = sink
        self._seen = SeenFrames()
        self._turns = 0
        self.turn: Turn | None = None  # the current turn, from the user's first word to the reply's end
        self._speech_start: int | None = None  # a VAD segment in progress
        self._segments: list[Interval] = []  # speech and transcription not yet in a turn
        self._heard: list[str] = []
        self._stt: Interval | None = None
        self._llm: Interval | None = None
        self._last_llm: Interval | None = None  # usage may come after the response's end (Realtime)
        self._tts: Interval | None = None
        self._calls: dict[str, Interval] = {}
        self._bot_speaking = False

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if not isinstance(frame, WATCHED) or not self._seen.first_sight(frame):
            return
        if frame.broadcast_sibling_id is not None and data.direction is FrameDirection.UPSTREAM:
            return  # one event per broadcast pair: its downstream copy
        self.handle(frame, data.source, data.timestamp)

    async def on_pipeline_finished(self) -> None:
        if self.turn is not None:
            self._finish_turn(self.turn.end_ns or self._last_ns(), reply_over=False)

    def _last_ns(self) -> int:
        turn = self.turn
        if turn is None:
            return 0
        times = [turn.start_ns, *(i.end_ns or i.start_ns for i in turn.intervals)]
        return max(t for t in (*times, turn.bot_started_ns, turn.user_stopped_ns) if t is not None)

    def handle(self, frame: Frame, source: Any, t: int) -> None:
        """One boundary frame, first seen at pipeline-clock time ``t`` as pushed by ``source``."""
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._speech_start = t - int(frame.start_secs * 1e9)
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            start = self._speech_start if self._speech_start is not None else t
            self._speech_start = None
            end = max(start, t - int(frame.stop_secs * 1e9))
            self._segments.append(Interval("vad", "voxloop.user_speech", start, end))
            if len(self._segments) > _MAX_PENDING:  # speech that never becomes a turn (a muted user)
                del self._segments[:-_MAX_PENDING]
                del self._heard[:-_MAX_PENDING]
            self._stt = Interval("stt", "voxloop.stt", t)
        elif isinstance(frame, TranscriptionFrame):
            if frame.text.strip():
                self._heard.append(frame.text.strip())
        elif isinstance(frame, TranscriptionFinishedFrame):
            self._finish_stt(t)
        elif isinstance(frame, UserStartedSpeakingFrame):
            self._start_turn(t)
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._user_stopped(t)
        elif isinstance(frame, InterruptionFrame):  # not from a new turn (which counts it itself)
            turn = self.turn
            if turn is not None and turn.responding and not turn.reply_done and not turn.interrupted:
                turn.interrupted = True
                self._sink.interruption()
        elif isinstance(frame, ErrorFrame):
            self._sink.error(frame)
            if self.turn is not None:
                self.turn.errors.append((frame.error, t))
        elif isinstance(frame, MetricsFrame):
            self._metrics(frame, source)
        else:
            self._bot_side(frame, source, t)

    def _bot_side(self, frame: Frame, source: Any, t: int) -> None:
        turn = self.turn
        if isinstance(frame, LLMFullResponseStartFrame) and isinstance(source, FunctionCallingService):
            self._llm = Interval("llm", "chat", t, attributes={"gen_ai.operation.name": "chat"})
            model = getattr(getattr(source, "settings", None), "model", None)
            if isinstance(model, str) and model:
                self._llm.attributes["gen_ai.request.model"] = model
            if not isinstance(source, LLMService):  # a speech-to-speech model (OpenAI Realtime)
                self._llm.attributes["voxloop.realtime"] = True
            if ".openai" in type(source).__module__:  # OpenAI's API (or a compatible server)
                self._llm.attributes["gen_ai.provider.name"] = "openai"
        elif isinstance(frame, LLMTextFrame) and isinstance(source, FunctionCallingService):
            if self._llm is not None and not self._llm.events:
                self._llm.events.append(("first_token", t))
                self._llm.attributes["voxloop.llm.first_token_ms"] = round((t - self._llm.start_ns) / 1e6, 3)
            if turn is not None and turn.first_llm_text_ns is None and self._answering(turn):
                turn.first_llm_text_ns = t
        elif isinstance(frame, LLMFullResponseEndFrame) and isinstance(source, FunctionCallingService):
            if self._llm is not None:
                self._finish(self._llm, t)
                self._last_llm, self._llm = self._llm, None
        elif isinstance(frame, TTSStartedFrame):
            self._tts = Interval("tts", "voxloop.tts", t)
        elif isinstance(frame, TTSAudioRawFrame):
            if self._tts is not None and not self._tts.events:
                self._tts.events.append(("first_audio", t))
                self._tts.attributes["voxloop.tts.first_audio_ms"] = round((t - self._tts.start_ns) / 1e6, 3)
            if turn is not None and turn.first_llm_text_ns is not None and turn.first_tts_audio_ns is None:
                turn.first_tts_audio_ns = t
        elif isinstance(frame, TTSStoppedFrame):
            if self._tts is not None:
                self._finish(self._tts, t)
                self._tts = None
        elif isinstance(frame, FunctionCallInProgressFrame):
            self._calls[frame.tool_call_id] = Interval(
                "function",
                f"execute_tool {frame.function_name}",
                t,
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": frame.function_name,
                    "gen_ai.tool.call.id": frame.tool_call_id,
                },
            )
        elif isinstance(frame, FunctionCallResultFrame | FunctionCallCancelFrame):
            self._settle_call(frame, t)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
            if turn is not None and turn.bot_started_ns is None and self._answering(turn):
                turn.bot_started_ns = t
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            if turn is not None and turn.reply_done:
                self._finish_turn(t, reply_over=True)
        elif isinstance(frame, AssistantTurnStoppedFrame) and turn is not None and turn.responding:
            turn.reply_done = True
            turn.bot_text = frame.text
            turn.interrupted = turn.interrupted or frame.interrupted
            if not self._bot_speaking:
                self._finish_turn(t, reply_over=True)

    def _answering(self, turn: Turn) -> bool:
        """The bot's output now answers ``turn``: its user is done, or (a speech-to-speech model with
        its own turn detection) went quiet after speaking and the model answered first."""
        if turn.responding:
            return True
        return self._speech_start is None and any(i.kind == "vad" for i in self._segments)

    def _metrics(self, frame: MetricsFrame, source: Any) -> None:
        for data in frame.data:
            model = data.model or ""
            if isinstance(data, TTFBMetricsData) and data.value > 0:
                if isinstance(source, FunctionCallingService):
                    self._sink.service_ttfb("llm", model, data.value)
                    if self._llm is not None:
                        self._llm.attributes["voxloop.llm.ttfb_ms"] = round(data.value * 1000, 3)
                elif isinstance(source, TTSService):
                    self._sink.service_ttfb("tts", model, data.value)
                    if self._tts is not None:
                        self._tts.attributes["voxloop.tts.ttfb_ms"] = round(data.value * 1000, 3)
                elif isinstance(source, STTService):
                    self._sink.service_ttfb("stt", model, data.value)
            elif isinstance(data, LLMUsageMetricsData) and data.value is not None:
                self._sink.llm_usage(model, data.value)
                response = self._llm or self._last_llm
                if response is not None:
                    attrs = response.attributes
                    attrs["gen_ai.usage.input_tokens"] = data.value.prompt_tokens
                    attrs["gen_ai.usage.output_tokens"] = data.value.completion_tokens
                    if model:
                        attrs.setdefault("gen_ai.request.model", model)
                        attrs["gen_ai.response.model"] = model

    def _finish_stt(self, t: int) -> None:
        stt, self._stt = self._stt, None
        if stt is None:
            return
        stt.attributes["voxloop.stt.words"] = sum(len(x.split()) for x in self._heard)
        stt.end_ns = t
        self._sink.interval_finished(stt)
        self._segments.append(stt)

    def _settle_call(self, frame: FunctionCallResultFrame | FunctionCallCancelFrame, t: int) -> None:
        call = self._calls.pop(frame.tool_call_id, None)
        if call is None:
            return
        if isinstance(frame, FunctionCallCancelFrame):
            call.error = "cancelled"
        elif isinstance(frame.result, dict) and "error" in frame.result:
            call.error = str(frame.result["error"])
        self._finish(call, t)

    def _finish(self, interval: Interval, t: int) -> None:
        interval.end_ns = t
        self._sink.interval_finished(interval)
        if self.turn is not None:
            self.turn.intervals.append(interval)

    def _start_turn(self, t: int) -> None:
        turn = self.turn
        if turn is not None and self._continues(turn):
            turn.user_stopped_ns = None  # the same words, late: the turn goes on
            return
        if turn is not None:
            if turn.responding and not turn.reply_done:  # the user cut the reply short (or its thinking)
                turn.interrupted = True
                self._sink.interruption()
            self._finish_turn(t, reply_over=False)
        self._turns += 1
        starts = [i.start_ns for i in self._segments if i.kind == "vad"]
        if self._speech_start is not None:
            starts.append(self._speech_start)
        self.turn = Turn(self._turns, min([*starts, t]))

    def _continues(self, turn: Turn) -> bool:
        """A turn restarted by no new speech while nothing answered it yet: the words came in late.

        A transcript that arrives after the turn gave up waiting for it (a loaded STT) restarts the
        turn; for the user it is the same utterance, so its latency still counts from their last word.
        """
        return (
            turn.responding
            and self._speech_start is None
            and not any(i.kind == "vad" for i in self._segments)
            and not any(i.kind == "llm" for i in turn.intervals)
            and turn.bot_started_ns is None
        )

    def _user_stopped(self, t: int) -> None:
        turn = self.turn
        if turn is None:  # a turn that ended without a start (a typed message, a lost frame)
            self._start_turn(t)
            turn = self.turn
            assert turn is not None
        turn.user_stopped_ns = t
        speech = [i for i in self._segments if i.kind == "vad"]
        if speech:
            turn.speech_end_ns = speech[-1].end_ns
        elif turn.speech_end_ns is None:  # no speech at all (typed text): the turn starts here
            turn.speech_end_ns = t
        if speech or turn.intervals:
            turn.intervals = [i for i in turn.intervals if i.kind != "turn_detection"]
            detection = Interval("turn_detection", "voxloop.turn_detection", turn.speech_end_ns, t)
            self._segments.append(detection)
        turn.intervals.extend(self._segments)
        turn.user_text.extend(self._heard)
        self._segments, self._heard = [], []

    def _finish_turn(self, t: int, *, reply_over: bool) -> None:
        turn, self.turn = self.turn, None
        if turn is None:
            return
        turn.end_ns = max(t, turn.start_ns)
        self._sink.turn_finished(turn)
        if reply_over and self._speech_start is None:  # speech over the reply that became no turn: noise
            self._segments, self._heard = [], []
