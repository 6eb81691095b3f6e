"""``python -m tests.batch_service --root DIR [--port N]``: serve until SIGTERM/SIGINT.

Prints one JSON line ``{"url", "account", "key", "root"}`` once the service is listening.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from .service import start_batch_service


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.batch_service", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="directory for node and task files")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--account", default="orchtest", help="Batch account name")
    parser.add_argument("--key", default=None, help="base64 account key (default: random)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service = start_batch_service(args.root, account=args.account, key=args.key, port=args.port)
    print(json.dumps(service.describe()), flush=True)
    try:
        stop.wait()
    finally:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
