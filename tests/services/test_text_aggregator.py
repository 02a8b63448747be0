from __future__ import annotations

import pytest

from voxloop.services.text_aggregator import SentenceAggregator


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
