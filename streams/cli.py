"""`streamwatch worker [--workers N]`: run the stream processing workers.

With N > 1 this process supervises N worker processes (one consumer each in the same
group, so partitions spread over them) and forwards SIGTERM/SIGINT to exactly those
processes, then waits for each to stop cleanly.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from streams import worker

STOP_TIMEOUT_S = 60.0


def _cmd_worker(args: argparse.Namespace) -> int:
    if args.workers <= 1:
        from streamwatch.settings import get_settings

        return worker.run(get_settings(), 0, args.loglevel)
    return supervise(args.workers, args.loglevel)


def supervise(n: int, loglevel: str) -> int:
    """Start `n` worker processes and stop them together on SIGTERM/SIGINT."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "streams.worker", "--index", str(i), "--loglevel", loglevel],
            env=os.environ.copy(),
        )
        for i in range(n)
    ]
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    while any(p.poll() is None for p in procs):
        time.sleep(0.5)
        if not stopping and any(p.poll() not in (None, 0) for p in procs):
            # A worker died: stop the rest rather than run with a silent hole.
            code = 1
            stop(signal.SIGTERM, None)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()  # only our own child, by its handle
            code = 1
        code = code or (p.returncode if p.returncode and p.returncode > 0 else 0)
    return code


def _cmd_service_worker(args: argparse.Namespace) -> int:
    import logging

    from streams import service_worker
    from streamwatch.settings import get_settings

    logging.basicConfig(level=args.loglevel)
    service_worker.serve(get_settings())
    return 0


def register(sub: Any) -> None:
    """Add the `worker` and `service-worker` subcommands."""
    p = sub.add_parser("worker", help="run the stream workers (validate, sessionize, detect)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(handler=_cmd_worker)
    p = sub.add_parser(
        "service-worker",
        help="run the control-plane stage (spans -> service minutes and service incidents)",
    )
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(handler=_cmd_service_worker)
