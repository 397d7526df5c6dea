"""One stream worker process: `python -m streams.worker [--index N]`.

Faust's Worker installs the signal handlers: SIGTERM/SIGINT stop the agents, flush the
producer, commit, and leave the consumer group cleanly. SIGUSR2 prints what every asyncio
task is waiting on to stderr (the worker log): the way to see why a worker is idle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.app import MINUTE_PARTIALS, StreamsApp
from streams.instrument import instrument
from streamwatch.errors import ConfigurationError
from streamwatch.settings import Settings, get_settings

# faust's consumer thread logs this as an ERROR for partitions whose events the agents take
# in batches (faust's monitor never records their inbound time), i.e. while they are being
# processed; lag is watched from the offsets instead (the dashboards' pipeline page).
_FALSE_ALARMS = ("Stream has not started processing",)
# aiokafka logs a metadata miss as an ERROR; on a worker's first start it is the internal
# topics the worker is about to create, so it is kept as a WARNING.
_NOT_YET_CREATED = "not found in cluster metadata"
FAUST_CONSUMER_LOGGER = "faust.transport.drivers.aiokafka"
AIOKAFKA_CLUSTER_LOGGER = "aiokafka.cluster"


class FalseAlarmFilter(logging.Filter):
    """Drops faust's misleading "Stream has not started processing" error line and keeps a
    not-yet-created topic as a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a false alarm (dropped), True for anything else."""
        message = record.getMessage()
        if _NOT_YET_CREATED in message and record.levelno == logging.ERROR:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return not any(alarm in message for alarm in _FALSE_ALARMS)


def silence_false_alarms() -> None:
    """Install `FalseAlarmFilter` on faust's and aiokafka's loggers (idempotent)."""
    for name in (FAUST_CONSUMER_LOGGER, AIOKAFKA_CLUSTER_LOGGER):
        logger = logging.getLogger(name)
        if not any(isinstance(f, FalseAlarmFilter) for f in logger.filters):
            logger.addFilter(FalseAlarmFilter())


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
            return
        # Made by the broker's auto-creation it has num.partitions partitions: the detector
        # (one offset sequence) would skip most partials and never raise an incident.
        described = await admin.describe_topics([name])
        partitions = len(described[0]["partitions"]) if described else 1
        if partitions > 1:
            raise ConfigurationError(
                f"{name} has {partitions} partitions; the detector needs exactly 1: "
                "delete the topic and start the worker again"
            )
    finally:
        await admin.close()


GC_THRESHOLDS = (100_000, 50, 1_000)  # CPython's default: (700, 10, 10)


def run(settings: Settings, index: int = 0, loglevel: str = "INFO") -> int:
    """Run one worker until it is told to stop; returns its exit code."""
    silence_false_alarms()
    # The worker holds every open session's state and its table entries (hundreds of
    # thousands of long-lived objects) and allocates a few dozen short-lived ones per event.
    # At CPython's default thresholds, the collections that walk the old objects cost
    # 12-15 % of the worker's CPU (bench_worker, 400,000 events: 103-106 against 88-93 µs
    # per event). Collect the young generation less often and the oldest rarely; reference
    # counting frees nearly everything here anyway.
    gc.set_threshold(*GC_THRESHOLDS)
    asyncio.run(ensure_internal_topics(settings))
    streams_app = StreamsApp(settings, index=index)
    instrument(streams_app, settings, index)
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
