"""One stream worker process: `python -m streams.worker [--index N]`.

Faust's Worker installs the signal handlers: SIGTERM/SIGINT stop the agents, flush the
producer, commit, and leave the consumer group cleanly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import faust

from streams.app import StreamsApp
from streamwatch.settings import Settings, get_settings


def run(settings: Settings, index: int = 0, loglevel: str = "INFO") -> int:
    """Run one worker until it is told to stop; returns its exit code."""
    streams_app = StreamsApp(settings, worker_index=index)
    worker = faust.Worker(streams_app.app, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of one worker process."""
    parser = argparse.ArgumentParser(prog="streams.worker")
    parser.add_argument("--index", type=int, default=0, help="worker number (its data dir)")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    return run(get_settings(), args.index, args.loglevel)


if __name__ == "__main__":
    sys.exit(main())
