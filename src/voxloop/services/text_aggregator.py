"""Sentence aggregation of streamed LLM text, so the TTS can speak sentence 1 while the LLM writes 2.

A sentence ends at ``.``, ``!`` or ``?`` (repeated, and followed by closing quotes or brackets) once
whitespace follows, or at a line break. A period after a title or Latin abbreviation ("Dr.", "e.g.") or a
single initial ("J.") does not end a sentence; "3.5" and "10:30" never look like ends because no
whitespace follows their punctuation. Text without an end stays buffered until :meth:`flush`.
"""

from __future__ import annotations

import re

# Abbreviations after which a period is not the end of a sentence (lower case, no final period).
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "rev", "gen", "col", "lt", "sgt",
        "capt", "gov", "sen", "rep", "hon", "vs", "cf", "e.g", "i.e", "approx", "vol", "fig", "dept", "jan",
        "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    }
)  # fmt: skip

_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)|\n")
_LAST_WORD = re.compile(r"[(\[\"'“‘]*([^\s(\[\"'“‘]+)$")


class SentenceAggregator:
    """Collects text pieces and hands out whole sentences (stripped, never empty)."""

    def __init__(self, abbreviations: frozenset[str] = ABBREVIATIONS) -> None:
        self._abbreviations = abbreviations
        self._buffer = ""
        self._scan_from = 0  # where to look for the next end (what is before it holds none)

    @property
    def text(self) -> str:
        """What is buffered, not yet a sentence."""
        return self._buffer

    def add(self, text: str) -> list[str]:
        """Append ``text``; return the sentences it completed, in order."""
        self._buffer += text
        sentences: list[str] = []
        while (end := self._next_end()) is not None:
            sentence, self._buffer = self._buffer[:end].strip(), self._buffer[end:]
            self._scan_from = 0
            if sentence:
                sentences.append(sentence)
        return sentences

    def flush(self) -> str | None:
        """Whatever is buffered, as a last sentence (None when only whitespace); empties the buffer."""
        rest, self._buffer, self._scan_from = self._buffer.strip(), "", 0
        return rest or None

    def clear(self) -> None:
        """Forget the buffered text (an interruption)."""
        self._buffer, self._scan_from = "", 0

    def _next_end(self) -> int | None:
        buffer = self._buffer
        for match in _END.finditer(buffer, self._scan_from):
            if match.group() == "\n" or not self._is_abbreviation(buffer, match.start(), match.group()):
                return match.end()
        # Everything scanned so far holds no end, except maybe the tail (punctuation waiting for space).
        self._scan_from = max(0, len(buffer) - 8)
        return None

    def _is_abbreviation(self, buffer: str, at: int, mark: str) -> bool:
        if mark.rstrip("\"'”’)]") != ".":
            return False
        word = _LAST_WORD.search(buffer, 0, at)
        if word is None:
            return False
        token = word.group(1).lower()
        return token in self._abbreviations or (len(token) == 1 and token.isalpha())
