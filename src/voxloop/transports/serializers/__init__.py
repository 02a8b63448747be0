"""Wire formats: frames to and from the bytes a transport sends.

:class:`ProtobufFrameSerializer` speaks the protobuf ``pipecat.Frame`` of the published WebSocket
clients; the schema is ``frames.proto`` in this folder (regenerate with ``scripts/gen_protos.sh``).
"""

from __future__ import annotations

from .protobuf import DEFAULT_MAX_MESSAGE_BYTES, ProtobufFrameSerializer, SerializationError

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "ProtobufFrameSerializer", "SerializationError"]
