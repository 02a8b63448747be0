"""Camera images for the Realtime server: ``input_image`` items take JPEG, so raw pixels are encoded.

A pure function, run off the event loop by the service (a few ms for a camera frame).
"""

from __future__ import annotations

import logging
from fractions import Fraction

logger = logging.getLogger("voxloop.services.realtime")

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
