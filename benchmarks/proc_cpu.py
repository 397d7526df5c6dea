"""CPU time of processes, read from Linux's /proc: what each stage of a run costs.

Wall-clock rates on the shared 2-core machine depend on whatever else runs; the CPU a
process used per event it handled depends far less on it, and the sum over every process
of a pipeline says how many events per second the cores can carry at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text()
            kids += [int(c) for c in text.split()]
    except OSError:
        pass
    return kids


def cpu_seconds(pid: int, with_children: bool = True) -> float:
    """User + system CPU seconds of `pid` (all its threads) and, by default, of its live
    descendants (a stub run with several processes); 0.0 for a process that is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    if with_children:
        total += sum(cpu_seconds(kid) for kid in _children(pid))
    return total


@dataclass
class CpuMeter:
    """CPU seconds of named processes between two marks (`alone`: names measured without
    their children, e.g. the benchmark itself, whose children are measured by name)."""

    pids: Mapping[str, int]
    alone: frozenset[str] = frozenset()
    _start: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)  # name -> CPU s between the marks

    def start(self) -> None:
        """The first mark."""
        self._start = self._now()

    def stop(self) -> None:
        """The second mark: `used` holds what each process used since `start`."""
        now = self._now()
        self.used = {name: now[name] - self._start.get(name, 0.0) for name in now}

    def _now(self) -> dict[str, float]:
        return {
            name: cpu_seconds(pid, with_children=name not in self.alone)
            for name, pid in self.pids.items()
        }
