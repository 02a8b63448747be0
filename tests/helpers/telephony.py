"""The dev server serving phone calls, with the providers' emulators on the other end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from helpers.server import running_server
from voxloop.bots import BotFactory
from voxloop.server import ServerConfig
from voxloop.testing.telephony import TwilioCloud
from voxloop.transports.telephony.twilio import TwilioProvider

AUTH_TOKEN = "12345678901234567890123456789012"


@asynccontextmanager
async def twilio_server(
    bot: BotFactory, *, verify: bool = True
) -> AsyncIterator[tuple[str, Any, TwilioCloud]]:
    """Yields (the webhook URL ``POST /twilio``, the app, the Twilio account the calls come from).

    The server's provider has the account's credentials and its REST client is the account's, so a
    hang-up reaches the emulated call it names.
    """
    cloud = TwilioCloud(AUTH_TOKEN)
    provider = TwilioProvider(cloud.account_sid, AUTH_TOKEN, verify=verify, rest_client=cloud.rest_client)
    config = ServerConfig(bot=bot, transports=(), telephony=(provider,), verify_webhooks=verify)
    async with running_server(config) as (base, app):
        yield f"{base}/twilio", app, cloud
