"""Build-time check of the image: every model of the default bot loads, offline, from its package.

Run by deploy/Dockerfile with HF_HUB_OFFLINE=1, as the image's user; a missing model fails the build.
"""

import asyncio

from voxloop.bots.default import preload
from voxloop.services.local.speech_engines import close_speech_workers


async def main() -> None:
    try:
        await preload()
    finally:
        await close_speech_workers()


if __name__ == "__main__":
    asyncio.run(main())
