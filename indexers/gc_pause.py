"""Pausing Python's cyclic garbage collector while a sink turns a poll into rows."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (reference counting still frees memory).

    Decoding a poll allocates a few hundred thousand small dicts and lists, all acyclic; with
    the collector on, its repeated scans of them took about half of the sinks' decode time
    (measured with `benchmarks/bench_search_sink.py`'s profile). Nested use is safe.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
