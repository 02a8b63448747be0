"""The ``voxloop`` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import logging
import sys

from . import __version__


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
    run.add_argument("--transport", choices=["all", "websocket", "webrtc"], default="all")
    run.add_argument("--max-sessions", type=int, default=50)
    run.add_argument("--require-token", action="store_true", help="one-time tokens from /start for /ws")
    run.add_argument("--allowed-origin", action="append", default=[], help="allow this Origin (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "demo":
        from .demo import run_demo

        asyncio.run(run_demo(sys.stdin, sys.stdout))
    elif args.command == "run":
        return _run_server(args)
    return 0


def _run_server(args: argparse.Namespace) -> int:
    from .bots import BotLoadError, bot_preloader, load_bot
    from .server import ServerConfig, serve

    try:
        bot = load_bot(args.bot)
    except BotLoadError as exc:
        print(f"voxloop: {exc}", file=sys.stderr)
        return 2
    transports = ("websocket", "webrtc") if args.transport == "all" else (args.transport,)
    if "webrtc" in transports and importlib.util.find_spec("aiortc") is None:
        if args.transport == "webrtc":
            print("voxloop: WebRTC needs the webrtc extra: pip install 'voxloop[webrtc]'", file=sys.stderr)
            return 2
        transports = ("websocket",)
    config = ServerConfig(
        bot=bot,
        transports=transports,
        max_sessions=args.max_sessions,
        require_token=args.require_token,
        allowed_origins=tuple(args.allowed_origin),
    )
    served = ", ".join(transports)

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
            await serve(config, args.host, args.port)
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
