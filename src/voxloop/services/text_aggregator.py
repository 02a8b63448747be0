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
# Characters of the previous text scanned again with new text: an end whose punctuation came
# before, and is waiting for whitespace, starts there.
_PENDING = 8


class SentenceAggregator:
    """Collects text pieces and hands out whole sentences (stripped, never empty).

    Linear in the text however it arrives (one piece or a token at a time, with or without ends):
    each piece is scanned once with a short overlap, text without an end is kept as a list of
    pieces rather than copied on every append, and the word before a period is looked up in a
    bounded window.
    """

    def __init__(self, abbreviations: frozenset[str] = ABBREVIATIONS) -> None:
        self._abbreviations = abbreviations
        # Looking further back than the longest abbreviation cannot change the answer.
        self._lookback = max((len(a) for a in abbreviations), default=1) + 2
        self._keep = self._lookback + _PENDING
        self._head: list[str] = []  # buffered text before the tail: scanned, no end in it
        self._tail = ""  # the last ``_keep`` characters buffered (all of them, if fewer)

    @property
    def text(self) -> str:
        """What is buffered, not yet a sentence."""
        return "".join(self._head) + self._tail

    def add(self, text: str) -> list[str]:
        """Append ``text``; return the sentences it completed, in order."""
        window = self._tail + text
        start = 0  # where the current sentence starts in ``window`` (before it: ``self._head``)
        sentences: list[str] = []
        for match in _END.finditer(window, max(0, len(self._tail) - _PENDING)):
            if match.group() != "\n" and self._is_abbreviation(window, start, match.start(), match.group()):
                continue
            end = match.end()
            sentence = (
                ("".join(self._head) + window[start:end]).strip() if self._head else window[start:end].strip()
            )
            self._head, start = [], end
            if sentence:
                sentences.append(sentence)
        rest = window[start:] if start else window
        if len(rest) > self._keep:
            self._head.append(rest[: -self._keep])
            rest = rest[-self._keep :]
        self._tail = rest
        return sentences

    def flush(self) -> str | None:
        """Whatever is buffered, as a last sentence (None when only whitespace); empties the buffer."""
        rest = self.text.strip()
        self.clear()
        return rest or None

    def clear(self) -> None:
        """Forget the buffered text (an interruption)."""
        self._head, self._tail = [], ""

    def _is_abbreviation(self, window: str, start: int, at: int, mark: str) -> bool:
        if mark.rstrip("\"'”’)]") != ".":
            return False
        # A word running past the look-back is longer than any abbreviation: not one.
        word = _LAST_WORD.search(window, max(start, at - self._lookback), at)
        if word is None:
            return False
        token = word.group(1).lower()
        return token in self._abbreviations or (len(token) == 1 and token.isalpha())
