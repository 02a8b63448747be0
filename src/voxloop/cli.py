"""The ``voxloop`` command."""

from __future__ import annotations

import argparse
import asyncio
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
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "demo":
        from .demo import run_demo

        asyncio.run(run_demo(sys.stdin, sys.stdout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
