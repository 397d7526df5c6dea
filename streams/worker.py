"""One stream worker process: `python -m streams.worker [--index N]`.

Faust's Worker installs the signal handlers: SIGTERM/SIGINT stop the agents, flush the
producer, commit, and leave the consumer group cleanly. SIGUSR2 prints what every asyncio
task is waiting on to stderr (the worker log): the way to see why a worker is idle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.app import MINUTE_PARTIALS, StreamsApp
from streamwatch.settings import Settings, get_settings


async def ensure_internal_topics(settings: Settings) -> None:
    """Create the one-partition partials topic if missing, before any agent subscribes.

    Left to faust, the detect agent can subscribe before the topic exists; the consumer
    then ignores it until its next metadata refresh (minutes), and nothing is judged.
    """
    name = settings.topic(MINUTE_PARTIALS)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        if name not in set(await admin.list_topics()):
            # Another worker may make it meanwhile.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        await admin.close()


def run(settings: Settings, index: int = 0, loglevel: str = "INFO") -> int:
    """Run one worker until it is told to stop; returns its exit code."""
    asyncio.run(ensure_internal_topics(settings))
    streams_app = StreamsApp(settings, worker_index=index)
    worker = faust.Worker(streams_app.app, loglevel=loglevel, quiet=True)
    # Faust's start-up spinner sets the root logger to DEBUG (to spin on every record), so
    # aiokafka built a debug record for every message sent: about 9 % of the worker's time.
    worker.spinner = None
    worker.loop.add_signal_handler(signal.SIGUSR2, _dump_tasks, worker.loop)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _await_chain(coro: Any) -> list[str]:
    """Where a coroutine is suspended, outermost first (follows cr_await / ag_await)."""
    out: list[str] = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is not None:
            out.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
    return out


def _dump_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    lines = [f"--- {len(tasks)} asyncio tasks ---"]
    for task in tasks:
        lines.append(f"* {task.get_name()}")
        lines.extend(f"    {where}" for where in _await_chain(task.get_coro()))
    out = sys.__stderr__ or sys.stderr  # the process's own stderr, not a logging proxy
    out.write("\n".join(lines) + "\n")
    out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of one worker process."""
    parser = argparse.ArgumentParser(prog="streams.worker")
    parser.add_argument("--index", type=int, default=0, help="worker number (its data dir)")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    return run(get_settings(), args.index, args.loglevel)


if __name__ == "__main__":
    sys.exit(main())
