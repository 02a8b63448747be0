"""What the user sends to the Realtime server: microphone audio (resampled to 24 kHz and sent in batches;
with manual turns, cleared and committed on our VAD) and camera images (as ``input_image`` items).

Functions of :class:`~voxloop.services.openai.realtime.OpenAIRealtimeService` (their first argument).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from fractions import Fraction
from typing import TYPE_CHECKING

from ...frames import InputAudioRawFrame, InputImageRawFrame
from ._realtime_responses import start_measuring

if TYPE_CHECKING:
    from .realtime import OpenAIRealtimeService

logger = logging.getLogger("voxloop.services.realtime")


async def user_audio(svc: OpenAIRealtimeService, frame: InputAudioRawFrame) -> None:
    if not svc._ready.is_set():
        return
    batch = svc._input.add(frame.audio, frame.sample_rate, frame.num_channels)
    if batch:
        await _append(svc, batch)


async def _append(svc: OpenAIRealtimeService, pcm: bytes) -> None:
    audio = base64.b64encode(pcm).decode("ascii")
    await svc._send("append", "input_audio_buffer.append", audio=audio)


async def restart_input_buffer(svc: OpenAIRealtimeService) -> None:
    """Manual turns, speech starts: drop older audio from the buffer, keep the pre-roll."""
    if not svc._ready.is_set():
        return
    svc._input.drop_pending()
    await svc._send("clear", "input_audio_buffer.clear")
    if preroll := svc._input.preroll():
        await _append(svc, preroll)


async def commit_input(svc: OpenAIRealtimeService) -> None:
    """Manual turns, speech stopped: the buffered audio is the user's turn."""
    if not svc._ready.is_set():
        return
    if batch := svc._input.flush():
        await _append(svc, batch)
    await svc._send("commit", "input_audio_buffer.commit")
    await start_measuring(svc)


async def user_image(svc: OpenAIRealtimeService, frame: InputImageRawFrame) -> None:
    """A camera image, at most one each ``video_interval_secs``."""
    now = svc.clock.now_ns()
    if not svc._ready.is_set():
        return
    if svc._last_image_ns is not None and now - svc._last_image_ns < svc.video_interval_secs * 1e9:
        return
    svc._last_image_ns = now
    # Raw pixels are encoded off the event loop (a few ms for a camera frame).
    jpeg = await asyncio.to_thread(as_jpeg, frame.image, frame.size, frame.format)
    if jpeg is None or not svc._ready.is_set():
        return
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
    item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_image", "image_url": url, "detail": svc.video_frame_detail}],
    }
    await svc._send("image", "conversation.item.create", item=item)


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
