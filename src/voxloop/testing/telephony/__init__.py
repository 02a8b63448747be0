"""Provider emulators: the telephony providers' side of a call, for tests and benchmarks."""

from __future__ import annotations

from ._call import EmulatedCall
from ._exotel import ExotelCloud, ExotelEmulator
from ._line import PlayoutLine
from ._plivo import PlivoCloud, PlivoEmulator
from ._telnyx import TelnyxCloud, TelnyxEmulator
from ._twilio import TwilioCloud, TwilioEmulator, TwimlStream
from ._vonage import VonageCloud, VonageEmulator

__all__ = [
    "EmulatedCall",
    "ExotelCloud",
    "ExotelEmulator",
    "PlayoutLine",
    "PlivoCloud",
    "PlivoEmulator",
    "TelnyxCloud",
    "TelnyxEmulator",
    "TwilioCloud",
    "TwilioEmulator",
    "TwimlStream",
    "VonageCloud",
    "VonageEmulator",
]
