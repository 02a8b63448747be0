"""Sentence aggregation of streamed LLM text, so the TTS can speak sentence 1 while the LLM writes 2.

A sentence ends at ``.``, ``!`` or ``?`` (repeated, and followed by closing quotes or brackets) once
whitespace follows, or at a line break. A period after a title or Latin abbreviation ("Dr.", "e.g.") or a
single initial ("J.") does not end a sentence; "3.5" and "10:30" never look like ends because no
whitespace follows their punctuation. Text without an end stays buffered until :meth:`flush`.

First clause: the first chunk of a reply may end earlier, at a clause boundary (``,`` ``;`` ``:`` or a
dash after a word) once it holds ``first_clause_words`` words, so its audio starts before the LLM has
written the whole first sentence. Later chunks stay whole sentences (engines phrase those better). A
comma, colon or semicolon only counts when whitespace follows ("1,000", "10:30" and URLs never cut), and
not right after an abbreviation ("e.g., this"); only the first ``FIRST_CLAUSE_SPAN`` characters are
searched. The rule starts again after :meth:`flush` and :meth:`clear`.
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
# A clause boundary: , ; : (with closing quotes or brackets) before whitespace, a dash between spaces
# after a word ("so - well", not "5 - 3"), or an em dash right after a word ("so—well", not "1990—2000").
_CLAUSE = re.compile(r"[,;:][\"'”’)\]]*(?=\s)|(?<=[^\W\d_]\s)[-–—](?=\s)|(?<=[^\W\d_])—")
_WORD = re.compile(r"\w")
# How far into a reply's first chunk a clause boundary is looked for: the search is redone on each
# piece of text, so it must stay short; a first clause longer than this waits for its sentence's end.
FIRST_CLAUSE_SPAN = 400
# Characters of the previous text scanned again with new text: an end whose punctuation came
# before, and is waiting for whitespace, starts there.
_PENDING = 8


class SentenceAggregator:
    """Collects text pieces and hands out whole sentences (stripped, never empty).

    Linear in the text however it arrives (one piece or a token at a time, with or without ends):
    each piece is scanned once with a short overlap, text without an end is kept as a list of
    pieces rather than copied on every append, and the word before a period is looked up in a
    bounded window. (The first-clause search rescans, but only the first ``FIRST_CLAUSE_SPAN``
    characters of a reply.)

    Args:
        abbreviations: words whose period does not end a sentence (lower case, no final period).
        first_clause_words: cut the first chunk at a clause boundary once it has this many words
            (0: the first chunk is a whole sentence too).
    """

    def __init__(self, abbreviations: frozenset[str] = ABBREVIATIONS, *, first_clause_words: int = 0) -> None:
        if first_clause_words < 0:
            raise ValueError("first_clause_words cannot be negative")
        self._abbreviations = abbreviations
        self._first_clause_words = first_clause_words
        self._seeking = first_clause_words > 0  # no chunk yet in this reply, and the span not passed
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
            if self._seeking:
                start = self._cut_first_clause(window, match.start(), sentences)
            end = match.end()
            sentence = (
                ("".join(self._head) + window[start:end]).strip() if self._head else window[start:end].strip()
            )
            self._head, start = [], end
            if sentence:
                sentences.append(sentence)
                self._seeking = False
        if self._seeking:
            start = self._cut_first_clause(window, len(window), sentences)
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
        self._seeking = self._first_clause_words > 0

    def _cut_first_clause(self, window: str, stop: int, chunks: list[str]) -> int:
        """Cut the first chunk at its first clause boundary before ``window[stop]`` with enough words.

        On a cut, the clause goes to ``chunks`` and the return value is where the rest starts in
        ``window`` (the head is emptied, or keeps what of it follows the cut); otherwise 0.
        """
        head = "".join(self._head)
        chunk = head + window[:stop]
        for match in _CLAUSE.finditer(chunk, 0, min(len(chunk), FIRST_CLAUSE_SPAN)):
            at = match.start()
            if chunk[at - 1 : at] == "." and self._is_abbreviation(chunk, 0, at - 1, "."):
                continue  # "e.g., this": the clause goes on
            if sum(1 for token in chunk[:at].split() if _WORD.search(token)) < self._first_clause_words:
                continue
            self._seeking = False
            chunks.append(chunk[: match.end()].strip())
            if match.end() >= len(head):
                self._head = []
                return match.end() - len(head)
            self._head = [head[match.end() :]]
            return 0
        if len(chunk) > FIRST_CLAUSE_SPAN:
            self._seeking = False  # the first chunk will be a whole sentence
        return 0

    def _is_abbreviation(self, window: str, start: int, at: int, mark: str) -> bool:
        if mark.rstrip("\"'”’)]") != ".":
            return False
        # A word running past the look-back is longer than any abbreviation: not one.
        word = _LAST_WORD.search(window, max(start, at - self._lookback), at)
        if word is None:
            return False
        token = word.group(1).lower()
        return token in self._abbreviations or (len(token) == 1 and token.isalpha())
