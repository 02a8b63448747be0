from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxloop.services import text_aggregator
from voxloop.services.text_aggregator import _END, _LAST_WORD, ABBREVIATIONS, SentenceAggregator


def stream(pieces: list[str]) -> tuple[list[str], str | None]:
    aggregator = SentenceAggregator()
    sentences: list[str] = []
    for piece in pieces:
        sentences += aggregator.add(piece)
    return sentences, aggregator.flush()


def chars(text: str) -> list[str]:
    return list(text)


@pytest.mark.parametrize(
    ("text", "sentences", "rest"),
    [
        ("Hello there. How are you? Fine!", ["Hello there.", "How are you?"], "Fine!"),
        ("Dr. Smith arrived. He was late.", ["Dr. Smith arrived."], "He was late."),
        ("Use e.g. a fork. Or not.", ["Use e.g. a fork."], "Or not."),
        ("I.e. this one, i.e. that. Done", ["I.e. this one, i.e. that."], "Done"),
        ("Pi is 3.14 roughly. Yes", ["Pi is 3.14 roughly."], "Yes"),
        ("Meet at 10:30. Then lunch.", ["Meet at 10:30."], "Then lunch."),
        ("It costs $3.50 today", [], "It costs $3.50 today"),
        ("Wait... what?! Really?", ["Wait...", "what?!"], "Really?"),
        ('He said "Stop." Then left.', ['He said "Stop."'], "Then left."),
        ("(Really.) Yes.", ["(Really.)"], "Yes."),
        ("J. R. Tolkien wrote it. True", ["J. R. Tolkien wrote it."], "True"),
        ("First line\nSecond line\n\nThird", ["First line", "Second line"], "Third"),
        ("Mr. and Mrs. Jones came. Ok", ["Mr. and Mrs. Jones came."], "Ok"),
        ("Visit www.example.com now. Bye", ["Visit www.example.com now."], "Bye"),
        ("   ", [], None),
        ("", [], None),
    ],
)
def test_sentences_whole_and_streamed_char_by_char(text: str, sentences: list[str], rest: str | None) -> None:
    assert stream([text]) == (sentences, rest)
    assert stream(chars(text)) == (sentences, rest)


def test_a_period_waits_for_what_follows_it() -> None:
    aggregator = SentenceAggregator()
    assert aggregator.add("It is 3.") == []  # could still be 3.5
    assert aggregator.add("5 now.") == []
    assert aggregator.add(" Next") == ["It is 3.5 now."]
    assert aggregator.text == " Next"


def test_sentence_ends_in_the_middle_of_a_token() -> None:
    aggregator = SentenceAggregator()
    assert aggregator.add("One. Tw") == ["One."]
    assert aggregator.add("o! Three") == ["Two!"]
    assert aggregator.flush() == "Three"
    assert aggregator.flush() is None


def test_clear_forgets_buffered_text() -> None:
    aggregator = SentenceAggregator()
    aggregator.add("Half a sent")
    aggregator.clear()
    assert aggregator.text == ""
    assert aggregator.add("ence. New") == ["ence."]


def test_long_text_without_end_keeps_linear_scanning() -> None:
    aggregator = SentenceAggregator()
    for _ in range(2000):
        assert aggregator.add("word ") == []
    assert aggregator.add("end. ") == [("word " * 2000 + "end.").strip()]


# -- the work stays linear in the text ------------------------------------------------------------


class RescanningAggregator:
    """The straightforward aggregator (whole-buffer rescans): the reference for what the sentences are."""

    def __init__(self) -> None:
        self.buffer = ""

    def add(self, text: str) -> list[str]:
        self.buffer += text
        sentences = []
        while (end := self._next_end()) is not None:
            sentence, self.buffer = self.buffer[:end].strip(), self.buffer[end:]
            if sentence:
                sentences.append(sentence)
        return sentences

    def flush(self) -> str | None:
        rest, self.buffer = self.buffer.strip(), ""
        return rest or None

    def _next_end(self) -> int | None:
        for match in _END.finditer(self.buffer):
            mark = match.group()
            if mark == "\n" or mark.rstrip("\"'”’)]") != ".":
                return match.end()
            word = _LAST_WORD.search(self.buffer, 0, match.start())
            token = word.group(1).lower() if word else ""
            if not (token in ABBREVIATIONS or (len(token) == 1 and token.isalpha())):
                return match.end()
        return None


pieces_of_text = st.lists(
    st.sampled_from(
        ["Dr.", "e.g.", "J.", "word", "a", "3.5", ".", "!", "?", " ", "\n", '"', ")", "(", "x" * 40]
    ),
    max_size=60,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(pieces_of_text, st.lists(st.integers(1, 30), max_size=20))
def test_same_sentences_as_a_whole_buffer_rescan_however_the_text_is_cut(text: str, cuts: list[int]) -> None:
    pieces, at = [], 0
    for size in cuts:
        pieces.append(text[at : at + size])
        at += size
    pieces.append(text[at:])
    reference = RescanningAggregator()
    expected = [s for piece in pieces for s in reference.add(piece)]
    assert stream(pieces) == (expected, reference.flush())


def best_time(feed: Callable[[SentenceAggregator], object], repeats: int = 5) -> float:
    """The best of a few runs, with the collector off: the noise of a busy machine, not the work, is
    what varies. A run over a second is long enough to stand alone."""
    times: list[float] = []
    gc.disable()
    try:
        while len(times) < repeats and not (times and times[-1] > 1.0):
            aggregator = SentenceAggregator()
            started = time.perf_counter()
            feed(aggregator)
            times.append(time.perf_counter() - started)
    finally:
        gc.enable()
    return min(times)


def by_words(text: str) -> Callable[[SentenceAggregator], object]:
    words = re.findall(r"\S+\s*", text)  # as an LLM streams it
    return lambda aggregator: [aggregator.add(word) for word in words]


def at_once(text: str) -> Callable[[SentenceAggregator], object]:
    return lambda aggregator: aggregator.add(text)


@pytest.mark.parametrize(
    ("unit", "size", "feed"),
    [
        ("lorem ipsum dolor sit amet ", 50_000, by_words),  # no end: used to copy the buffer per token
        ("lorem ipsum dolor sit amet. ", 200_000, at_once),  # many ends: used to copy the rest per end
    ],
    ids=["no-ends-streamed", "sentences-at-once"],
)
def test_ten_times_the_text_costs_about_ten_times_the_work(
    unit: str, size: int, feed: Callable[[str], Callable[[SentenceAggregator], object]]
) -> None:
    small, large = ((unit * (n // len(unit) + 1))[:n] for n in (size, 10 * size))
    ratio = best_time(feed(large)) / best_time(feed(small))
    assert ratio < 30, f"10x the text took {ratio:.0f}x the time (linear is 10x)"


class CountingPattern:
    """Stands in for one of the aggregator's patterns and adds up how much text it was asked to scan."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.scanned = 0

    def finditer(self, string: str, pos: int = 0, endpos: int | None = None) -> Iterator[re.Match[str]]:
        end = len(string) if endpos is None else endpos
        self.scanned += end - pos
        return self.pattern.finditer(string, pos, end)

    def search(self, string: str, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
        end = len(string) if endpos is None else endpos
        self.scanned += end - pos
        return self.pattern.search(string, pos, end)


@pytest.mark.parametrize("unit", ["lorem ipsum dolor sit amet. ", "see Dr. Who e.g. now ", "a b c. d e\n"])
@pytest.mark.parametrize("streamed", [True, False], ids=["word-by-word", "at-once"])
def test_each_character_is_scanned_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch, unit: str, streamed: bool
) -> None:
    ends, words = CountingPattern(_END), CountingPattern(_LAST_WORD)
    monkeypatch.setattr(text_aggregator, "_END", ends)
    monkeypatch.setattr(text_aggregator, "_LAST_WORD", words)
    text = (unit * (5_000 // len(unit) + 1))[:5_000]
    pieces = re.findall(r"\S+\s*", text) if streamed else [text]
    aggregator = SentenceAggregator()
    for piece in pieces:
        aggregator.add(piece)
    # A piece is scanned with a few characters of overlap, the word before a period in a short window:
    # a constant per piece, and the text itself about once.
    assert ends.scanned + words.scanned <= 2 * len(text) + 24 * len(pieces), (ends.scanned, words.scanned)


def first_clause(pieces: list[str], words: int = 3) -> tuple[list[str], str | None]:
    aggregator = SentenceAggregator(first_clause_words=words)
    chunks: list[str] = []
    for piece in pieces:
        chunks += aggregator.add(piece)
    return chunks, aggregator.flush()


@pytest.mark.parametrize(
    ("text", "chunks", "rest"),
    [
        # The first chunk ends at the first clause boundary with 3 words before it; later ones are sentences.
        ("Well, the bus leaves at noon, so hurry. Then, later, eat.",
         ["Well, the bus leaves at noon,", "so hurry."], "Then, later, eat."),
        ("Sure, I can help with that. Bye", ["Sure, I can help with that."], "Bye"),
        ("The short answer: yes, it works. Ok", ["The short answer:", "yes, it works."], "Ok"),
        ("Three things matter; speed, care. Ok", ["Three things matter;", "speed, care."], "Ok"),
        ("I think so - but wait. Ok", ["I think so -", "but wait."], "Ok"),
        ("I was thinking—maybe not. Ok", ["I was thinking—", "maybe not."], "Ok"),
        ('She said "no way," and left. Ok', ['She said "no way,"', "and left."], "Ok"),
        # A sentence end before any boundary: the sentence, as before.
        ("Hi. Then we go, all three of us. ", ["Hi.", "Then we go, all three of us."], None),
        # Numbers, times, decimals and URLs have no whitespace after their marks: never cut there.
        ("It costs 1,000 dollars, more or less.", ["It costs 1,000 dollars,"], "more or less."),
        ("We meet at 10:30 sharp, ok?", ["We meet at 10:30 sharp,"], "ok?"),
        ("Pi is about 3.14159 or so, roughly.", ["Pi is about 3.14159 or so,"], "roughly."),
        ("See https://x.org/a,b:c for it, please.", ["See https://x.org/a,b:c for it,"], "please."),
        # Abbreviations: neither the sentence nor the clause ends there.
        ("Bring something sharp e.g., a fork, for this. Ok",
         ["Bring something sharp e.g., a fork,", "for this."], "Ok"),
        ("Ask Dr. Smith, he knows, today.", ["Ask Dr. Smith,"], "he knows, today."),
        ("Numbers 5 - 3 make two, yes.", ["Numbers 5 - 3 make two,"], "yes."),
        ("It ran from 1990—2000 or so, then.", ["It ran from 1990—2000 or so,"], "then."),
        ("No boundary in this one at all", [], "No boundary in this one at all"),
    ],
)  # fmt: skip
def test_first_clause_ends_the_first_chunk_whole_and_streamed(
    text: str, chunks: list[str], rest: str | None
) -> None:
    assert first_clause([text]) == (chunks, rest)
    assert first_clause(chars(text)) == (chunks, rest)


def test_first_clause_rule_starts_again_after_flush_and_clear() -> None:
    aggregator = SentenceAggregator(first_clause_words=2)
    assert aggregator.add("One two, three. Four five, six. ") == ["One two,", "three.", "Four five, six."]
    assert aggregator.flush() is None
    assert aggregator.add("Seven eight, nine. ") == ["Seven eight,", "nine."]
    aggregator.add("Ten eleven")
    aggregator.clear()
    assert aggregator.add("Twelve thirteen, fourteen. ") == ["Twelve thirteen,", "fourteen."]


def test_first_clause_off_and_bad_value() -> None:
    assert SentenceAggregator().add("Well then, the bus leaves. ") == ["Well then, the bus leaves."]
    with pytest.raises(ValueError, match="negative"):
        SentenceAggregator(first_clause_words=-1)


def test_a_clause_past_the_span_waits_for_the_sentence_end() -> None:
    aggregator = SentenceAggregator(first_clause_words=3)
    assert aggregator.add("A, b, ") == []
    for _ in range(2000):
        assert aggregator.add("word ") == []
    long_sentence = ("A, b, " + "word " * 2000 + "more, end.").strip()
    assert aggregator.add("more, end. Next, one, two three, four. ") == [
        long_sentence,
        "Next, one, two three, four.",
    ]
    # Within the span, a boundary found late in a long streamed chunk still cuts it (and the head
    # that the aggregator keeps apart from its tail is split right).
    aggregator.flush()
    text = "w " * 150 + "end, rest. "
    assert [c for piece in text for c in aggregator.add(piece)] == [("w " * 150 + "end,").strip(), "rest."]


pieces_with_clauses = st.lists(
    st.sampled_from(
        ["Dr.", "e.g.", "word", "a", "1,000", ",", ";", ":", "—", " - ", ".", "?", " ", "\n", '"', "x" * 60]
    ),
    max_size=60,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(pieces_with_clauses, st.lists(st.integers(1, 30), max_size=20))
def test_first_clause_chunks_do_not_depend_on_how_the_text_is_cut(text: str, cuts: list[int]) -> None:
    pieces, at = [], 0
    for size in cuts:
        pieces.append(text[at : at + size])
        at += size
    pieces.append(text[at:])
    chunks, rest = first_clause(pieces)
    assert (chunks, rest) == first_clause([text])
    # Nothing is lost or doubled: the chunks are the text, in order (less the whitespace between).
    assert "".join("".join([*chunks, rest or ""]).split()) == "".join(text.split())
