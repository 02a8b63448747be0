"""The ``voxloop`` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import json
import logging
import os
import sys
from typing import Any

from . import __version__

# voxloop.transports.telephony.PROVIDERS, without importing it at startup
TELEPHONY = ("twilio", "telnyx", "plivo", "vonage", "exotel")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voxloop", description="voxloop: real-time voice AI agents")
    parser.add_argument("--version", action="version", version=f"voxloop {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo", help="a text pipeline in the terminal: type a line, see it flow through processors"
    )
    run = commands.add_parser("run", help="serve a bot to RTVI clients (the dev server)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=7860)
    run.add_argument(
        "--bot", default="default", help="a built-in bot (default, echo) or a .py file with create_bot()"
    )
    run.add_argument(
        "--transport",
        action="append",
        choices=["all", "websocket", "webrtc", *TELEPHONY],
        help="what to serve (repeatable; default: all = websocket and webrtc); a phone provider adds "
        "its webhook POST /<provider> and its media socket",
    )
    run.add_argument("--public-url", help="this server's https URL as phone providers reach it (a tunnel's)")
    run.add_argument(
        "--no-verify-webhooks",
        action="store_true",
        help="accept unsigned phone-provider webhooks (local testing only)",
    )
    run.add_argument("--max-sessions", type=int, default=50)
    run.add_argument("--require-token", action="store_true", help="one-time tokens from /start for /ws")
    run.add_argument("--allowed-origin", action="append", default=[], help="allow this Origin (repeatable)")
    run.add_argument(
        "--cluster",
        default=os.environ.get("VOXLOOP_CLUSTER_URL"),
        metavar="redis://HOST:PORT/DB",
        help="join this cluster as a worker (env VOXLOOP_CLUSTER_URL)",
    )
    run.add_argument(
        "--advertise-url",
        default=os.environ.get("VOXLOOP_ADVERTISE_URL"),
        metavar="URL",
        help="how gateways and clients reach this worker: http://IP:PORT (env VOXLOOP_ADVERTISE_URL)",
    )
    run.add_argument(
        "--drain-timeout",
        type=float,
        default=os.environ.get("VOXLOOP_DRAIN_TIMEOUT", "30"),  # argparse applies type= to it
        metavar="SECS",
        help="on SIGTERM, how long live sessions may go on before they are ended (env VOXLOOP_DRAIN_TIMEOUT)",
    )
    _add_ice_options(run)
    gateway = commands.add_parser("gateway", help="the cluster's front: hands each /start to a free worker")
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=int, default=7870)
    gateway.add_argument(
        "--cluster", default=os.environ.get("VOXLOOP_CLUSTER_URL"), metavar="redis://HOST:PORT/DB"
    )
    gateway.add_argument("--transport", choices=["all", "websocket", "webrtc"], default="all")
    gateway.add_argument(
        "--reservation-ttl",
        type=float,
        default=30.0,
        metavar="SECS",
        help="how long a booked place waits for its client",
    )
    for serving in (run, gateway):
        serving.add_argument(
            "--log-format",
            choices=["text", "json"],
            default="text",
            help="json: one object per line, for log shippers",
        )
    _add_ice_options(gateway)
    cluster = commands.add_parser("cluster", help="look at a cluster")
    cluster.add_argument("action", choices=["status"])
    cluster.add_argument(
        "--cluster", default=os.environ.get("VOXLOOP_CLUSTER_URL"), metavar="redis://HOST:PORT/DB"
    )
    cluster.add_argument("--json", action="store_true", help="JSON instead of a table")
    args = parser.parse_args(argv)
    from .telemetry import configure_logging

    configure_logging(logging.DEBUG if args.verbose else logging.INFO, getattr(args, "log_format", "text"))
    if args.command == "demo":
        from .demo import run_demo

        asyncio.run(run_demo(sys.stdin, sys.stdout))
    elif args.command == "run":
        return _run_server(args)
    elif args.command in ("gateway", "cluster"):
        if not args.cluster:
            print(
                "voxloop: --cluster redis://HOST:PORT/DB (or VOXLOOP_CLUSTER_URL) is required",
                file=sys.stderr,
            )
            return 2
        if importlib.util.find_spec("redis") is None:
            print(
                "voxloop: the cluster needs the cluster extra: pip install 'voxloop[cluster]'",
                file=sys.stderr,
            )
            return 2
        return _run_gateway(args) if args.command == "gateway" else _cluster_status(args)
    return 0


def _add_ice_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="a STUN or TURN server for WebRTC, handed to clients too: stun:HOST:PORT, "
        "turn:HOST:PORT[?transport=tcp], turns:HOST:PORT (repeatable; "
        "default: env VOXLOOP_ICE_SERVERS, a JSON list of RTCIceServer objects, else none)",
    )
    parser.add_argument(
        "--ice-username",
        default=os.environ.get("VOXLOOP_ICE_USERNAME"),
        help="the username for the turn: servers (env VOXLOOP_ICE_USERNAME)",
    )
    parser.add_argument(
        "--ice-credential",
        default=os.environ.get("VOXLOOP_ICE_CREDENTIAL"),
        help="the credential for the turn: servers (env VOXLOOP_ICE_CREDENTIAL)",
    )


def _ice_servers(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """The ICE servers of ``--ice-server`` or ``VOXLOOP_ICE_SERVERS``; None (and a message) if wrong."""
    from .server.ice import ice_servers

    try:
        return ice_servers(
            args.ice_server, args.ice_username, args.ice_credential, os.environ.get("VOXLOOP_ICE_SERVERS")
        )
    except ValueError as exc:
        print(f"voxloop: {exc}", file=sys.stderr)
        return None


def _run_gateway(args: argparse.Namespace) -> int:
    from .cluster import GatewayConfig, serve_gateway

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per forwarded offer
    transports = ("websocket", "webrtc") if args.transport == "all" else (args.transport,)
    servers = _ice_servers(args)
    if servers is None:
        return 2
    config = GatewayConfig(
        args.cluster,
        transports=transports,
        reservation_ttl_secs=args.reservation_ttl,
        ice_servers=servers,
    )
    try:
        asyncio.run(serve_gateway(config, args.host, args.port))
    except KeyboardInterrupt:
        pass
    print("voxloop: gateway stopped", flush=True)
    return 0


def _cluster_status(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from .cluster import connect_redis, format_status, read_workers

    async def read() -> list[Any]:
        redis = connect_redis(args.cluster)
        try:
            return await read_workers(redis)
        finally:
            await redis.aclose()

    try:
        workers = asyncio.run(read())
    except (RedisError, OSError) as exc:
        print(f"voxloop: the cluster registry at {args.cluster} is unreachable: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([w.as_json() for w in workers], indent=2))
    else:
        print(format_status(workers))
    return 0


def _run_server(args: argparse.Namespace) -> int:
    from .bots import BotLoadError, bot_preloader, load_bot
    from .server import ServerConfig, serve

    try:
        bot = load_bot(args.bot)
    except BotLoadError as exc:
        print(f"voxloop: {exc}", file=sys.stderr)
        return 2
    chosen = args.transport or ["all"]
    telephony = tuple(dict.fromkeys(name for name in chosen if name in TELEPHONY))
    browser = [name for name in chosen if name not in TELEPHONY]
    transports: tuple[str, ...] = ()
    if "all" in browser or (not browser and not telephony):
        transports = ("websocket", "webrtc")
    else:
        transports = tuple(dict.fromkeys(browser))
    servers = _ice_servers(args)
    if servers is None:
        return 2
    if "webrtc" in transports and importlib.util.find_spec("aiortc") is None:
        if "webrtc" in browser:
            print("voxloop: WebRTC needs the webrtc extra: pip install 'voxloop[webrtc]'", file=sys.stderr)
            return 2
        transports = tuple(t for t in transports if t != "webrtc")
    from .transports.telephony import create_provider

    config = ServerConfig(
        bot=bot,
        transports=transports,
        max_sessions=args.max_sessions,
        require_token=args.require_token,
        allowed_origins=tuple(args.allowed_origin),
        ice_servers=servers,
        telephony=tuple(create_provider(name, verify=not args.no_verify_webhooks) for name in telephony),
        public_url=args.public_url,
        verify_webhooks=not args.no_verify_webhooks,
    )
    served = ", ".join(transports + telephony)
    if args.cluster:
        if importlib.util.find_spec("redis") is None:
            print(
                "voxloop: --cluster needs the cluster extra: pip install 'voxloop[cluster]'", file=sys.stderr
            )
            return 2
        advertise = args.advertise_url
        if advertise and not advertise.startswith(("http://", "https://")):
            print(
                f"voxloop: --advertise-url must be http://HOST:PORT or https://..., not {advertise!r}",
                file=sys.stderr,
            )
            return 2
        if not advertise:
            if args.host in ("0.0.0.0", "::", ""):
                print("voxloop: --cluster with --host 0.0.0.0 needs --advertise-url", file=sys.stderr)
                return 2
            advertise = f"http://{args.host}:{args.port}"
        from .cluster import ClusterWorker

        # A worker's /ws takes tokens only: a client that skipped the gateway would skip the booking.
        config.require_token = True
        config.cluster = ClusterWorker(
            args.cluster, advertise, capacity=args.max_sessions, transports=transports
        )
        served += f"; cluster worker at {advertise}"
    if telephony and not args.public_url:
        print(
            "voxloop: no --public-url: phone webhooks are answered with this server's own address", flush=True
        )

    async def preload_and_serve() -> None:
        try:
            preload = bot_preloader(bot)
            if preload is not None:  # models load once per process, before the first client waits on them
                result = preload()
                if inspect.isawaitable(result):
                    await result
            print(
                f"voxloop: bot {args.bot!r} on http://{args.host}:{args.port} ({served}; Ctrl-C to stop)",
                flush=True,
            )
            await serve(config, args.host, args.port, drain_timeout=args.drain_timeout)
        finally:
            if (engines := sys.modules.get("voxloop.services.local.speech_engines")) is not None:
                await engines.close_speech_workers()  # the shared speech worker processes, if any ran

    try:
        asyncio.run(preload_and_serve())
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled once every session has ended
    print("voxloop: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
