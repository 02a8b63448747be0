"""The Realtime service's connection: connecting, the receive loop, reconnecting, and small helpers.

Functions of :class:`~voxloop.services.openai.realtime.OpenAIRealtimeService` (their first argument).
"""

from __future__ import annotations

import asyncio
import logging
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from openai import AsyncOpenAI

from ...frames import ErrorCategory
from ..llm import LLMServiceError
from ._realtime_events import handle_server_event

if TYPE_CHECKING:
    from .realtime import OpenAIRealtimeService

logger = logging.getLogger("voxloop.services.realtime")


class RealtimeAuthError(LLMServiceError):
    """The API key is missing or was refused."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorCategory.AUTHENTICATION)


async def keep_connected(svc: OpenAIRealtimeService) -> None:
    """The connection task: connect, receive, and after a loss reconnect (or give up with a fatal error)."""
    failures = 0
    while not svc._closing:
        try:
            await _connect_and_receive(svc)
            failures = 0
        except RealtimeAuthError as exc:
            await svc._fatal(str(exc), exc, ErrorCategory.AUTHENTICATION)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            logger.warning("%s: connection failed (%d): %r", svc, failures, exc)
            if failures > svc.reconnect_attempts:
                message = f"{svc.name}: lost the Realtime API connection and could not reconnect: {exc}"
                await svc._fatal(message, exc, ErrorCategory.CONNECTIVITY)
                return
            await svc.clock.sleep(min(0.25 * 2 ** (failures - 1), 4.0))
        if svc._closing:
            return
        if svc._reconnect_now:
            svc._reconnect_now = False
        else:
            await svc._call_event_handler("on_connection_lost")


async def _connect_and_receive(svc: OpenAIRealtimeService) -> None:
    if not svc._api_key and not svc._base_url:
        raise RealtimeAuthError(
            "no OpenAI API key: set OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server)"
        )
    if svc._client is None:
        svc._client = AsyncOpenAI(api_key=svc._api_key or "unused", base_url=svc._base_url or None)
    manager = svc._client.realtime.connect(model=svc.realtime_settings.model)
    try:
        conn = await manager.enter()
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise RealtimeAuthError(f"the OpenAI API key was refused (HTTP {status})") from exc
        raise
    svc._conn = conn
    try:
        while True:
            event = await conn.recv()
            await handle_server_event(svc, event)
    except Exception as exc:
        if svc._closing or svc._reconnect_now or isinstance(exc, RealtimeAuthError):
            if isinstance(exc, RealtimeAuthError):
                raise
            return
        raise
    finally:
        svc._conn = None
        svc._ready.clear()
        svc._configured.clear()
        await svc._connection_gone()
        await close_quietly(conn)


async def close_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception as exc:
        logger.debug("closing the Realtime connection: %r", exc)


_RAW_PIXELS = {"rgb": "rgb24", "rgb24": "rgb24", "rgba": "rgba", "bgr": "bgr24", "bgr24": "bgr24"}


def as_jpeg(image: bytes, size: tuple[int, int], fmt: str | None) -> bytes | None:
    """The image as JPEG bytes: encoded JPEGs pass as they are, raw RGB/RGBA (or BGR) pixels are encoded
    with PyAV's MJPEG encoder (``av``, which comes with aiortc). None, with a warning, if that cannot be."""
    kind = (fmt or "").lower()
    if kind in ("jpeg", "jpg", "image/jpeg"):
        return image
    pixel = _RAW_PIXELS.get(kind)
    width, height = size
    channels = 4 if pixel == "rgba" else 3
    if pixel is None or width <= 0 or height <= 0 or len(image) != width * height * channels:
        logger.warning("camera image not sent: cannot encode %r (%dx%d, %d bytes)", fmt, *size, len(image))
        return None
    try:
        import av
        import numpy as np
    except ImportError:
        logger.warning("camera image (%s) not sent: encoding raw images to JPEG needs PyAV (av)", fmt)
        return None
    pixels = np.frombuffer(image, dtype=np.uint8).reshape(height, width, channels)
    frame = av.VideoFrame.from_ndarray(pixels, format=pixel).reformat(format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 1)
    return b"".join(bytes(packet) for packet in [*encoder.encode(frame), *encoder.encode(None)])
