"""The LLM's text gathered into sentences for the legacy ``bot-transcription``: same sentences as a
whole-buffer rescan, in time linear in the reply however it is split into tokens."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from voxloop.rtvi.observer import _Sentences


class RescanningSentences:
    """The straightforward version (rescans the whole buffer per token): the reference."""

    ENDS = _Sentences._ENDS

    def __init__(self) -> None:
        self.text = ""

    def add(self, text: str) -> str | None:
        self.text += text
        for i in range(len(self.text) - 1, -1, -1):
            if self.text[i] in self.ENDS and (i + 1 == len(self.text) or self.text[i + 1].isspace()):
                done, self.text = self.text[: i + 1].strip(), self.text[i + 1 :]
                return done or None
        return None

    def take(self) -> str | None:
        text, self.text = self.text.strip(), ""
        return text or None


tokens = st.lists(
    st.sampled_from(["Hi", ".", "3.5", " ", "!", "?", "。", "x" * 10, " ok.", "\n"]), max_size=40
)


@given(tokens)
def test_sentences_are_those_of_a_whole_buffer_rescan(pieces: list[str]) -> None:
    sentences, reference = _Sentences(), RescanningSentences()
    for piece in pieces:
        assert sentences.add(piece) == reference.add(piece)
    assert sentences.take() == reference.take()


def _cpu_secs_for_a_reply_without_an_end(tokens: int) -> float:
    sentences = _Sentences()
    started = time.process_time()
    for _ in range(tokens):
        sentences.add("x" * 9 + " ")
    elapsed = time.process_time() - started
    assert sentences.take() == (("x" * 9 + " ") * tokens).strip()
    return elapsed


def test_a_long_reply_without_a_sentence_end_costs_linear_time() -> None:
    # Rescanning (and copying) the whole buffer on every token: 10x the reply took 63x the time.
    small = min(_cpu_secs_for_a_reply_without_an_end(400) for _ in range(3))
    large = min(_cpu_secs_for_a_reply_without_an_end(4_000) for _ in range(3))
    ratio = large / max(small, 1e-4)
    assert ratio < 30, f"10x the reply took {ratio:.0f}x the time (linear is 10x)"
