"""The emulated conversation as state: its items in order, the audio of each audio item, and where
each word of the model's spoken replies lies in that audio (so a truncation knows what was heard).

Pure (no I/O): the connection sends the ``conversation.item.*`` events.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ._audio import SpokenWord


@dataclass
class ConversationItems:
    items: list[dict[str, Any]] = field(default_factory=list)
    audio: dict[str, bytearray] = field(default_factory=dict)  # item id -> PCM16 24 kHz
    words: dict[str, list[SpokenWord]] = field(default_factory=dict)  # item id -> the reply's words

    def find(self, item_id: str) -> dict[str, Any] | None:
        return next((item for item in self.items if item["id"] == item_id), None)

    def insert(self, item: dict[str, Any], previous_item_id: str | None = None) -> str | None:
        """Add ``item`` after ``previous_item_id`` (None: at the end, ``"root"``: first); returns the id
        of the item now before it, as the API reports it (None when it is first). The previous item
        must exist (the client event handler checks)."""
        if previous_item_id is None:
            previous = self.items[-1]["id"] if self.items else None
            self.items.append(item)
            return previous
        if previous_item_id == "root":
            self.items.insert(0, item)
            return None
        index = next(i for i, it in enumerate(self.items) if it["id"] == previous_item_id)
        self.items.insert(index + 1, item)
        return previous_item_id

    def update(self, item: dict[str, Any]) -> str | None:
        """The stored item takes ``item``'s fields (a reply's item once it is complete); returns the id
        of the item before it."""
        stored = self.find(item["id"])
        if stored is not None:
            stored.update(copy.deepcopy(item))
        index = next((i for i, it in enumerate(self.items) if it["id"] == item["id"]), 0)
        return self.items[index - 1]["id"] if index > 0 else None

    def remove(self, item_id: str) -> dict[str, Any] | None:
        item = self.find(item_id)
        if item is not None:
            self.items.remove(item)
            self.audio.pop(item_id, None)
        return item
