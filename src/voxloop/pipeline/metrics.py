"""Timing and usage measurements of one processor (TTFB, processing time, tokens, characters)."""

from __future__ import annotations

from ..frames import (
    LLMTokenUsage,
    LLMUsageMetricsData,
    MetricsData,
    ProcessingMetricsData,
    STTUsageMetricsData,
    TTFBMetricsData,
    TTSUsageMetricsData,
)


class ProcessorMetrics:
    """Keeps the running timers of one processor and turns them into metrics data.

    Times are nanoseconds from the pipeline clock. A stop without a start, or a stop earlier than
    its start, measures nothing. With ``report_only_initial_ttfb`` only the first TTFB counts.
    """

    def __init__(self, processor: str) -> None:
        self.processor = processor
        self.model: str | None = None
        self.timing_enabled = False
        self.usage_enabled = False
        self.report_only_initial_ttfb = False
        self._ttfb_start: int | None = None
        self._ttfb_reported = False
        self._processing_start: int | None = None

    def start_ttfb(self, now_ns: int) -> None:
        if self.timing_enabled and not (self.report_only_initial_ttfb and self._ttfb_reported):
            self._ttfb_start = now_ns

    def stop_ttfb(self, now_ns: int) -> TTFBMetricsData | None:
        start, self._ttfb_start = self._ttfb_start, None
        if start is None or now_ns < start:
            return None
        self._ttfb_reported = True
        return TTFBMetricsData(self.processor, self.model, value=(now_ns - start) / 1e9)

    def cancel_ttfb(self) -> None:
        self._ttfb_start = None

    def start_processing(self, now_ns: int) -> None:
        if self.timing_enabled:
            self._processing_start = now_ns

    def stop_processing(self, now_ns: int) -> ProcessingMetricsData | None:
        start, self._processing_start = self._processing_start, None
        if start is None or now_ns < start:
            return None
        return ProcessingMetricsData(self.processor, self.model, value=(now_ns - start) / 1e9)

    def stop_all(self, now_ns: int) -> list[MetricsData]:
        """Stop the running timers (an interruption): measured so far is still reported."""
        stopped = [self.stop_ttfb(now_ns), self.stop_processing(now_ns)]
        return [data for data in stopped if data is not None]

    def llm_usage(self, usage: LLMTokenUsage) -> LLMUsageMetricsData | None:
        if not self.usage_enabled:
            return None
        return LLMUsageMetricsData(self.processor, self.model, value=usage)

    def tts_usage(self, text: str) -> TTSUsageMetricsData | None:
        if not self.usage_enabled:
            return None
        return TTSUsageMetricsData(self.processor, self.model, value=len(text))

    def stt_usage(self, audio_seconds: float) -> STTUsageMetricsData | None:
        if not self.usage_enabled:
            return None
        return STTUsageMetricsData(self.processor, self.model, audio_seconds=audio_seconds)

    def initial(self) -> list[MetricsData]:
        """Zero entries, so dashboards know this processor measures before its first turn."""
        if not self.timing_enabled:
            return []
        return [
            TTFBMetricsData(self.processor, self.model, value=0.0),
            ProcessingMetricsData(self.processor, self.model, value=0.0),
        ]
