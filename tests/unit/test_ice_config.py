"""ICE servers from the command line or VOXLOOP_ICE_SERVERS, in the browser's RTCIceServer shape."""

from __future__ import annotations

import json

import pytest
from aiortc.rtcicetransport import parse_stun_turn_uri

from voxloop.server.ice import ice_servers


def test_none_by_default() -> None:
    assert ice_servers([]) == []
    assert ice_servers([], env_json="  ") == []


def test_urls_with_the_turn_credentials() -> None:
    servers = ice_servers(["stun:stun.example.com:3478", "turns:turn.example.com:443"], "ada", "s3cret")
    assert servers == [
        {"urls": "stun:stun.example.com:3478"},
        {"urls": "turns:turn.example.com:443", "username": "ada", "credential": "s3cret"},
    ]


def test_the_urls_aiortc_parses_are_accepted() -> None:
    urls = ["stun:10.0.0.1", "turn:192.0.2.1:3478", "turn:t.example.com:3478?transport=tcp"]
    assert [s["urls"] for s in ice_servers(urls, "u", "c")] == urls
    for url in urls:  # and aiortc reads them the same way
        assert parse_stun_turn_uri(url)["host"] in url


def test_the_flags_win_over_the_environment() -> None:
    env = json.dumps([{"urls": "stun:from-env:3478"}])
    assert ice_servers(["stun:from-flag:3478"], env_json=env) == [{"urls": "stun:from-flag:3478"}]


def test_the_environment_takes_the_browser_shape() -> None:
    env = [{"urls": ["turn:a:3478?transport=tcp", "turn:a:3478"], "username": "u", "credential": "c"}]
    assert ice_servers([], env_json=json.dumps(env)) == env


@pytest.mark.parametrize(
    ("urls", "env", "message"),
    [
        (["turn:turn.example.com:3478"], None, "needs a username and a credential"),
        (["http://turn.example.com"], None, "must start with stun:"),
        (["stun:stun.example.com:port"], None, "is not SCHEME:HOST"),
        (["stun:"], None, "is not SCHEME:HOST"),
        (["turn:a:3478?transport=sctp"], None, "is not SCHEME:HOST"),
        (["stun:[2001:db8::1]:3478"], None, "is not SCHEME:HOST"),  # aiortc cannot parse it
        ([], "{nope", "not JSON"),
        ([], '{"urls": "stun:a"}', "JSON list"),
        ([], '[{"url": "stun:a"}]', "unknown key"),
        ([], '[{"urls": []}]', "needs 'urls'"),
        ([], '[{"urls": "turn:a", "username": "u"}]', "needs a username and a credential"),
        ([], '[{"urls": "turn:a", "username": 1, "credential": "c"}]', "must be a string"),
    ],
)
def test_what_cannot_work_is_a_clear_error(urls: list[str], env: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ice_servers(urls, env_json=env)
