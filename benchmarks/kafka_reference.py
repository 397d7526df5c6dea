"""Kafka's own perf tools, run from the fetched jars, as the reference for our benchmarks.

`ProducerPerformance` and `ConsumerPerformance` ship in `kafka-tools`, which `infra/` fetches
with the broker. Our producers and consumers are reported as a ratio against these, measured
on the same machine in the same run (DESIGN.md, Performance method).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from infra.fetch import KAFKA
from infra.toolchain import find_java
from streamwatch.settings import Settings


@dataclass(frozen=True)
class PerfResult:
    """Records per second and MB per second that a Kafka perf tool reported."""

    records: int
    records_per_s: float
    mb_per_s: float


def _run_tool(settings: Settings, main_class: str, args: list[str]) -> str:
    java = find_java(settings.kafka_java_home, 17).executable
    classpath = f"{KAFKA.lib(settings.cache_dir)}/*"
    proc = subprocess.run(
        [str(java), "-Xmx512m", "-cp", classpath, main_class, *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{main_class} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def producer_performance(
    settings: Settings, topic: str, num_records: int, record_size: int
) -> PerfResult:
    """Run `ProducerPerformance` (acks=all, idempotent, as our producers) and parse its summary."""
    out = _run_tool(
        settings,
        "org.apache.kafka.tools.ProducerPerformance",
        [
            "--topic",
            topic,
            "--num-records",
            str(num_records),
            "--record-size",
            str(record_size),
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={settings.bootstrap_servers}",
            "acks=all",
            "enable.idempotence=true",
            "linger.ms=5",
        ],
    )
    last = out.strip().splitlines()[-1]
    m = re.search(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)", last)
    if not m:
        raise RuntimeError(f"cannot parse ProducerPerformance output: {last}")
    return PerfResult(int(m.group(1)), float(m.group(2)), float(m.group(3)))


def consumer_performance(settings: Settings, topic: str, num_records: int) -> PerfResult:
    """Run `ConsumerPerformance` over `topic` from the beginning and parse its summary."""
    out = _run_tool(
        settings,
        "org.apache.kafka.tools.ConsumerPerformance",
        [
            "--bootstrap-server",
            settings.bootstrap_servers,
            "--topic",
            topic,
            "--messages",
            str(num_records),
            "--timeout",
            "60000",
        ],
    )
    lines = [ln for ln in out.strip().splitlines() if ln and not ln.startswith("start.time")]
    fields = [f.strip() for f in lines[-1].split(",")]
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
    return PerfResult(int(fields[4]), float(fields[5]), float(fields[3]))
