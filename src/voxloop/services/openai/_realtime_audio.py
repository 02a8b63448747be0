"""Audio bookkeeping of the Realtime service: input batching, and how much of the bot's audio was played.

:class:`InputAudio` resamples the transport's audio to the API's 24 kHz and hands it out in batches of
about 100 ms (one ``input_audio_buffer.append`` each), keeping a short pre-roll of recent audio.

:class:`PlayedAudio` follows the output item being played. The output transport plays audio in real time
from the moment it gets it, so the service can tell where playback is without a round trip: it keeps the
time the audio pushed so far will have finished playing, and for the current item the time its first
sample played. ``audio_end_ms`` for a truncation is then the time since that moment, never more than the
audio received.

:class:`TranscriptPacer` places the model's transcript in the audio: each piece goes where the audio was
when the piece arrived (the API sends a piece of transcript just before its audio), shifted by the output
transport's lead, so the text leaves the output transport when its audio starts playing. The assistant
aggregator after the output therefore stores exactly the words that were heard.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ...audio import PCMConverter
from ._realtime_settings import SAMPLE_RATE

BYTES_PER_MS = SAMPLE_RATE * 2 // 1000
_NS_PER_MS = 1_000_000


class InputAudio:
    """16 kHz (or any rate) in, 24 kHz batches out."""

    def __init__(self, batch_ms: int = 100, preroll_ms: int = 500) -> None:
        self._converter = PCMConverter(SAMPLE_RATE)
        self._batch_bytes = batch_ms * BYTES_PER_MS
        self._pending = bytearray()
        self._preroll: deque[bytes] = deque()
        self._preroll_bytes = 0
        self._preroll_max = preroll_ms * BYTES_PER_MS

    def add(self, audio: bytes, sample_rate: int, num_channels: int) -> bytes | None:
        """Add audio; returns a batch when one is full."""
        pcm = self._converter.convert(audio, sample_rate, num_channels)
        if not pcm:
            return None
        self._pending.extend(pcm)
        self._preroll.append(pcm)
        self._preroll_bytes += len(pcm)
        while self._preroll_bytes - len(self._preroll[0]) >= self._preroll_max:
            self._preroll_bytes -= len(self._preroll.popleft())
        if len(self._pending) >= self._batch_bytes:
            return self.flush()
        return None

    def flush(self) -> bytes | None:
        """What is pending, now (before a commit)."""
        if not self._pending:
            return None
        batch = bytes(self._pending)
        self._pending.clear()
        return batch

    def preroll(self) -> bytes:
        """The most recent audio (up to ``preroll_ms``), already sent: replayed after a buffer clear."""
        return b"".join(self._preroll)

    def drop_pending(self) -> None:
        self._pending.clear()


@dataclass
class _Item:
    item_id: str
    content_index: int
    start_ns: int  # when its first sample played (or will)
    received: int = 0  # bytes
    truncated: bool = False


class PlayedAudio:
    """Where playback of the bot's audio is (see the module docstring)."""

    def __init__(self) -> None:
        self._cursor_ns = 0  # when the audio pushed so far will have finished playing
        self.item: _Item | None = None

    def received(self, item_id: str, content_index: int, nbytes: int, now_ns: int) -> None:
        if self._cursor_ns < now_ns:
            self._cursor_ns = now_ns  # the player ran dry: this audio plays from now
        item = self.item
        if item is None or item.item_id != item_id or item.content_index != content_index:
            item = self.item = _Item(item_id, content_index, self._cursor_ns)
        item.received += nbytes
        self._cursor_ns += nbytes * _NS_PER_MS // BYTES_PER_MS

    def played_ms(self, now_ns: int) -> int:
        """How much of the current item has played: never more than what was received."""
        item = self.item
        if item is None:
            return 0
        played = max(0, (now_ns - item.start_ns) // _NS_PER_MS)
        return int(min(played, item.received // BYTES_PER_MS))

    def unplayed(self, now_ns: int) -> bool:
        item = self.item
        return item is not None and self.played_ms(now_ns) < item.received // BYTES_PER_MS

    def stop(self, now_ns: int) -> None:
        """Playback stopped (an interruption): nothing is queued any more."""
        self._cursor_ns = now_ns
        self.item = None


@dataclass
class _Piece:
    at: int  # audio position (bytes into the item) where the text belongs
    text: str


@dataclass
class TranscriptPacer:
    """Holds transcript pieces until the item's audio reaches them."""

    lead_ms: int = 100
    _pieces: deque[_Piece] = field(default_factory=deque)
    _item_id: str | None = None
    _position: int = 0  # bytes of the item's audio pushed so far

    def add(self, item_id: str, text: str) -> None:
        self._switch(item_id)
        self._pieces.append(_Piece(self._position + self.lead_ms * BYTES_PER_MS, text))

    def split(self, item_id: str, pcm: bytes) -> list[bytes | str]:
        """Cut ``pcm`` where pieces of text fall due: audio chunks and texts, in playing order."""
        self._switch(item_id)
        out: list[bytes | str] = []
        while pcm:
            if self._pieces and self._pieces[0].at <= self._position:
                out.append(self._pieces.popleft().text)
                continue
            cut = len(pcm)
            if self._pieces:
                cut = min(cut, self._pieces[0].at - self._position)
                cut -= cut % 2
                cut = max(cut, 2)
            out.append(pcm[:cut])
            self._position += cut
            pcm = pcm[cut:]
        while self._pieces and self._pieces[0].at <= self._position:
            out.append(self._pieces.popleft().text)
        return out

    def flush(self) -> list[str]:
        """The item's audio is complete: the rest of its text."""
        texts = [piece.text for piece in self._pieces]
        self._pieces.clear()
        return texts

    def clear(self) -> None:
        self._pieces.clear()
        self._item_id = None
        self._position = 0

    def _switch(self, item_id: str) -> None:
        if item_id != self._item_id:
            self._pieces.clear()
            self._item_id = item_id
            self._position = 0
