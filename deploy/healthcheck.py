"""Container health check: exit 0 when the URL answers 200 (the image has no curl).

The URL is the first argument, else ``VOXLOOP_HEALTH_URL``, else a worker's ``/healthz``.
"""

import os
import sys
import urllib.request

DEFAULT_URL = "http://127.0.0.1:7860/healthz"


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("VOXLOOP_HEALTH_URL", DEFAULT_URL)
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return 0 if reply.status == 200 else 1
    except OSError as exc:  # refused, timed out, or an HTTP error status
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
