"""The frame base classes: identity, timing fields and the three kinds of frames.

Frames are small dataclasses, created by the thousand per second (every 20 ms of audio is one), so
creating one must stay cheap: the id comes from a lock-free counter and the name is only formatted
when somebody asks for it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, ClassVar

# next() on itertools.count is atomic under the GIL: unique ids without a lock.
_frame_ids = itertools.count(1)


@dataclass(eq=False)
class Frame:
    """Everything that moves through a pipeline is a frame.

    Frames compare by identity (two frames with the same text are still two events). The fields
    below are not constructor arguments; they are set on every frame:

    - ``id``: unique, increasing across the process.
    - ``pts``: presentation timestamp in nanoseconds of the pipeline clock, or None to play at once.
    - ``metadata``: free-form data that travels with the frame.
    - ``transport_source`` / ``transport_destination``: which input produced it / which output
      track should play it, for transports with several tracks.
    - ``broadcast_sibling_id``: the id of the twin frame sent the other way by a broadcast.
    """

    id: int = field(init=False, default_factory=_frame_ids.__next__)
    pts: int | None = field(init=False, default=None)
    metadata: dict[str, Any] = field(init=False, default_factory=dict)
    transport_source: str | None = field(init=False, default=None)
    transport_destination: str | None = field(init=False, default=None)
    broadcast_sibling_id: int | None = field(init=False, default=None)

    #: System frames are handled at once: they overtake queued frames and survive interruptions.
    system: ClassVar[bool] = False
    #: Uninterruptible frames stay queued through an interruption and are not cancelled.
    uninterruptible: ClassVar[bool] = False

    @property
    def name(self) -> str:
        """``ClassName#id``, for logs."""
        return f"{type(self).__name__}#{self.id}"

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class SystemFrame(Frame):
    """High priority: processed immediately by every processor, never dropped by interruptions."""

    system: ClassVar[bool] = True


@dataclass(eq=False)
class DataFrame(Frame):
    """Ordered content (audio, text, ...): queued in order, dropped if queued when interrupted."""


@dataclass(eq=False)
class ControlFrame(Frame):
    """Ordered control (end of a response, settings, ...): same ordering rules as data frames."""


@dataclass(eq=False)
class UninterruptibleFrame(Frame):
    """Marker mixed into data or control frames that must survive an interruption, in order.

    Use it as a second base: ``class MyFrame(DataFrame, UninterruptibleFrame)``.
    """

    uninterruptible: ClassVar[bool] = True
