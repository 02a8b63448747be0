"""The dev server serving phone calls, with the providers' emulators on the other end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from helpers.server import running_server
from voxloop.bots import BotFactory, SessionInfo
from voxloop.bots.echo import Echo
from voxloop.frames import EndTaskFrame, Frame, InputDTMFFrame, KeypadEntry
from voxloop.pipeline import FrameDirection, FrameProcessor, Pipeline, PipelineTask
from voxloop.rtvi import RTVIProcessor
from voxloop.server import ServerConfig
from voxloop.testing.telephony import ExotelCloud, PlivoCloud, TelnyxCloud, TwilioCloud, VonageCloud
from voxloop.transports import Transport
from voxloop.transports.telephony import TelephonyProvider
from voxloop.transports.telephony.exotel import ExotelProvider
from voxloop.transports.telephony.plivo import PlivoProvider
from voxloop.transports.telephony.telnyx import TelnyxProvider
from voxloop.transports.telephony.twilio import TwilioProvider
from voxloop.transports.telephony.vonage import VonageProvider

AUTH_TOKEN = "12345678901234567890123456789012"

#: The providers with an emulator, for tests parametrized over them.
PROVIDERS = ("twilio", "telnyx", "plivo", "vonage", "exotel")


def cloud_and_provider(name: str, *, verify: bool = True) -> tuple[Any, TelephonyProvider]:
    """A provider's emulated account, and the server's provider configured with its credentials and
    a REST client whose requests that account answers (so a hang-up reaches the call it names)."""
    if name == "twilio":
        twilio = TwilioCloud(AUTH_TOKEN)
        return twilio, TwilioProvider(
            twilio.account_sid, AUTH_TOKEN, verify=verify, rest_client=twilio.rest_client
        )
    if name == "plivo":
        plivo = PlivoCloud()
        return plivo, PlivoProvider(
            plivo.auth_id, plivo.auth_token, verify=verify, rest_client=plivo.rest_client
        )
    if name == "vonage":
        vonage = VonageCloud()
        provider = VonageProvider(
            vonage.signature_secret,
            vonage.application_id,
            vonage.private_key,
            verify=verify,
            rest_client=vonage.rest_client,
        )
        return vonage, provider
    if name == "exotel":
        exotel = ExotelCloud()
        return exotel, ExotelProvider(exotel.api_key, exotel.api_token, verify=verify)
    telnyx = TelnyxCloud()
    return telnyx, TelnyxProvider(
        telnyx.public_key, telnyx.api_key, verify=verify, rest_client=telnyx.rest_client
    )


@asynccontextmanager
async def phone_server(
    name: str, bot: BotFactory, *, verify: bool = True
) -> AsyncIterator[tuple[str, Any, Any]]:
    """Yields (the webhook URL ``POST /<name>``, the app, the provider account the calls come from)."""
    cloud, provider = cloud_and_provider(name, verify=verify)
    config = ServerConfig(bot=bot, transports=(), telephony=(provider,), verify_webhooks=verify)
    async with running_server(config) as (base, app):
        yield f"{base}/{name}", app, cloud


def twilio_server(bot: BotFactory, *, verify: bool = True) -> Any:
    return phone_server("twilio", bot, verify=verify)


class EchoOrHangUp:
    """The echo bot for calls, keeping each call's session info and task; key # ends the call from
    the bot's side (through the provider's REST API)."""

    def __init__(self) -> None:
        self.sessions: list[SessionInfo] = []
        self.tasks: list[PipelineTask] = []

    def __call__(self, transport: Transport, session: SessionInfo) -> PipelineTask:
        self.sessions.append(session)

        class HangUpOnPound(FrameProcessor):
            async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
                await self.push_frame(frame, direction)
                if isinstance(frame, InputDTMFFrame) and frame.button is KeypadEntry.POUND:
                    await self.push_frame(EndTaskFrame(), FrameDirection.UPSTREAM)

        processors = [RTVIProcessor(), transport.input(), HangUpOnPound(), Echo(), transport.output()]
        task = PipelineTask(Pipeline(processors))
        self.tasks.append(task)
        return task
