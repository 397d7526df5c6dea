"""A process pool for tests that run pure logic in parallel (fault scenarios, backtests).

Started by `spawn`, never `fork`: by the time these tests run, earlier tests in the same
pytest process have started threads (the warehouse column decode keeps a DuckDB connection
on its own thread, `indexers.event_columns`), and a child forked from a process with such
threads can crash at once (seen: a segfault in every forked child, so each scenario errored).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def spawned_pool(workers: int = 2) -> ProcessPoolExecutor:
    """A pool of `workers` fresh interpreters (they import what they run)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
