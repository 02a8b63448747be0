"""Fixtures of the browser tests."""

from __future__ import annotations

import aioice.ice
import pytest

from helpers.browser import missing, require


@pytest.fixture
def web_build() -> None:
    """The built page (``make web``)."""
    require(missing(browser=False))


@pytest.fixture
def browser_tools() -> None:
    """The page, Debian's Chromium, node and playwright-core."""
    require(missing(browser=True))


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiortc offers host candidates only on non-loopback interfaces: pin them to 127.0.0.1."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda *_, **__: ["127.0.0.1"])
