"""Wire formats: frames to and from the messages a WebSocket carries.

:class:`ProtobufFrameSerializer` speaks the protobuf ``pipecat.Frame`` of the published WebSocket
clients (binary frames; the schema is ``frames.proto`` in this folder, regenerate with
``scripts/gen_protos.sh``). :class:`JSONFrameSerializer` speaks plain RTVI JSON in text frames,
for clients without protobuf. Both are :class:`FrameSerializer`; a connection picks one by name
with :func:`serializer_for_wire` (the ``wire`` query parameter of ``/ws``).
"""

from __future__ import annotations

from typing import Final

from .base import FrameSerializer, SerializationError
from .protobuf import DEFAULT_MAX_MESSAGE_BYTES, ProtobufFrameSerializer
from .rtvi_json import BOT_AUDIO_TYPE, JSONFrameSerializer

__all__ = [
    "BOT_AUDIO_TYPE",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_WIRE",
    "WIRES",
    "FrameSerializer",
    "JSONFrameSerializer",
    "ProtobufFrameSerializer",
    "SerializationError",
    "serializer_for_wire",
]

#: Wire name (the ``wire`` query parameter) -> its serializer. Both are stateless, so shared.
WIRES: Final[dict[str, FrameSerializer]] = {
    "protobuf": ProtobufFrameSerializer(),
    "json": JSONFrameSerializer(),
}
#: What a connection speaks when it names no wire: the published web client's.
DEFAULT_WIRE: Final = "protobuf"


def serializer_for_wire(name: str | None) -> FrameSerializer:
    """The serializer of the wire called ``name`` (None or empty: the default wire).

    Raises ValueError naming the known wires for anything else.
    """
    serializer = WIRES.get(name or DEFAULT_WIRE)
    if serializer is None:
        raise ValueError(f"unknown wire {name!r}: use one of {', '.join(sorted(WIRES))}")
    return serializer
