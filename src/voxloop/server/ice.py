"""The ICE servers (STUN/TURN) a server hands to aiortc and, in ``/start`` replies, to its clients.

Two ways to give them, the same for ``voxloop run`` and ``voxloop gateway``:

- ``--ice-server URL`` (repeatable), with ``--ice-username`` / ``--ice-credential`` for the
  ``turn:``/``turns:`` ones (env ``VOXLOOP_ICE_USERNAME`` / ``VOXLOOP_ICE_CREDENTIAL``, so that a
  secret can hold them);
- or env ``VOXLOOP_ICE_SERVERS``: a JSON list in the browser's ``RTCIceServer`` shape,
  ``[{"urls": "turn:turn.example.com:3478", "username": "u", "credential": "c"}]`` (``urls`` a
  string or a list of strings), used when no ``--ice-server`` is given.

None by default: nothing ever contacts a public STUN server unless told to.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["IceServer", "ice_servers"]

#: One server as the browser's ``RTCIceServer`` (what ``iceConfig.iceServers`` holds).
IceServer = dict[str, Any]

_SCHEMES = ("stun:", "turn:", "turns:")  # what aiortc speaks
#: RFC 7064/7065 URIs as aiortc parses them (a malformed one would fail every session, not start-up).
_URI = re.compile(r"(stun|turns?):([^\s:?/\[\]]+)(:\d{1,5})?(\?transport=(udp|tcp))?")  # no IPv6 in aiortc


def ice_servers(
    urls: list[str],
    username: str | None = None,
    credential: str | None = None,
    env_json: str | None = None,
) -> list[IceServer]:
    """The servers from ``--ice-server`` URLs (with the TURN credentials), else from ``env_json``.

    Raises ValueError with a message for the user: an unknown scheme, a TURN URL without its
    username and credential, JSON that is not a list of servers.
    """
    if urls:
        servers: list[IceServer] = []
        for url in urls:
            if url.startswith(("turn:", "turns:")):
                servers.append({"urls": url, "username": username or "", "credential": credential or ""})
            else:
                servers.append({"urls": url})
    elif env_json and env_json.strip():
        try:
            parsed = json.loads(env_json)
        except ValueError as exc:
            raise ValueError(f"VOXLOOP_ICE_SERVERS is not JSON: {exc}") from None
        if not isinstance(parsed, list) or not all(isinstance(s, dict) for s in parsed):
            raise ValueError('VOXLOOP_ICE_SERVERS must be a JSON list of {"urls", ...} objects')
        servers = [_from_json(server) for server in parsed]
    else:
        return []
    for server in servers:
        _check(server)
    return servers


def _from_json(server: dict[str, Any]) -> IceServer:
    unknown = set(server) - {"urls", "username", "credential"}
    if unknown:
        raise ValueError(
            f"VOXLOOP_ICE_SERVERS: unknown key(s) {sorted(unknown)} (urls, username, credential)"
        )
    return dict(server)


def _check(server: IceServer) -> None:
    urls = server.get("urls")
    url_list = [urls] if isinstance(urls, str) else urls
    if not isinstance(url_list, list) or not url_list or not all(isinstance(u, str) for u in url_list):
        raise ValueError(f"an ICE server needs 'urls', a URL or a list of URLs: {server!r}")
    for url in url_list:
        if not url.startswith(_SCHEMES):
            raise ValueError(f"ICE server {url!r}: the URL must start with stun:, turn: or turns:")
        if not _URI.fullmatch(url):
            raise ValueError(f"ICE server {url!r} is not SCHEME:HOST[:PORT][?transport=udp|tcp]")
        if url.startswith(("turn:", "turns:")) and not (server.get("username") and server.get("credential")):
            raise ValueError(
                f"TURN server {url!r} needs a username and a credential "
                "(--ice-username/--ice-credential or VOXLOOP_ICE_USERNAME/VOXLOOP_ICE_CREDENTIAL)"
            )
    for key in ("username", "credential"):
        if key in server and not isinstance(server[key], str):
            raise ValueError(f"ICE server {url_list[0]!r}: {key!r} must be a string")
