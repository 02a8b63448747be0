"""How often the client is told about the same problem: bad input in a flood must not become a
flood of errors back (nor of log lines).

The first report of a kind of problem goes out at once; after it, at most one every ``every_ns``,
saying how many were dropped without a word since the last one. Kinds are a small fixed vocabulary
chosen by the caller, never text from the client, so the bookkeeping stays a few entries.
"""

from __future__ import annotations

__all__ = ["REPORT_EVERY_NS", "ReportThrottle"]

REPORT_EVERY_NS = 10_000_000_000


class ReportThrottle:
    """Per kind of problem: when it was last reported, and how many went unreported since."""

    __slots__ = ("_every_ns", "_kinds")

    def __init__(self, every_ns: int = REPORT_EVERY_NS) -> None:
        self._every_ns = every_ns
        self._kinds: dict[str, tuple[int, int]] = {}

    def due(self, kind: str, now_ns: int) -> int | None:
        """One more problem of ``kind`` at ``now_ns``: None when it goes unreported (it is counted),
        else report it now; the number is how many went unreported since the last report."""
        last = self._kinds.get(kind)
        if last is not None and now_ns - last[0] < self._every_ns:
            self._kinds[kind] = (last[0], last[1] + 1)
            return None
        self._kinds[kind] = (now_ns, 0)
        return last[1] if last is not None else 0

    @staticmethod
    def since(dropped: int, what: str) -> str:
        """The words to append to a report when ``dropped`` went unreported (empty when none did)."""
        return f" ({dropped} more {what} dropped since the last report)" if dropped else ""
