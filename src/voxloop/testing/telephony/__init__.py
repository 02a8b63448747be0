"""Provider emulators: the telephony providers' side of a call, for tests and benchmarks."""

from __future__ import annotations

from ._line import PlayoutLine
from ._twilio import TwilioCloud, TwilioEmulator, TwimlStream

__all__ = ["PlayoutLine", "TwilioCloud", "TwilioEmulator", "TwimlStream"]
