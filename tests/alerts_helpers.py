"""For the alerts tests: a recording HTTP receiver that can go down, stub runs replayed in
process, and writing their rollups to the warehouse or to Kafka."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from contract.records import Incident, MinuteRollup
from contract.tables import TABLE_BY_NAME
from indexers.arrow_rows import rows_to_table
from indexers.documents import flatten_record, source_fields
from indexers.warehouse_writer import write_partitioned
from platform_stub.config import StubConfig
from platform_stub.generator import RunOptions, StubRun, seed_epoch_ms
from platform_stub.scenarios import ScenarioTruth
from streams.replay import replay

# The scale of tests/test_streams_scenarios.py: big enough cohorts for the detector.
MEMBERS = 4_000
RATE = 200.0
DURATION_S = 900.0
WARMUP_S = 240.0
START_OFFSET_MS = 6 * 3600_000  # 01:00 UTC, the Americas' evening
# The control plane is off: these runs are the QoE faults the rules were tuned on. With it
# on, steering moves sessions between caches and, in this small population, the outage OCA
# of `oca_outage` seed 2 drops below the OCA rule's 20-session cohort for a minute (the QoE
# incident rule still fires). The control plane's own faults are tested in
# tests/test_streams_service_scenarios.py.
_QOE_ONLY = StubConfig()
CONFIG = dataclasses.replace(
    _QOE_ONLY,
    fault_start_frac=0.3,
    fault_end_frac=0.6,
    control_plane=dataclasses.replace(_QOE_ONLY.control_plane, enabled=False),
)
# Runs of different scenarios are moved 4 weeks apart (same weekday and hour) so that one
# warehouse or one set of topics can hold them all without their minutes overlapping.
SHIFT_MS = 28 * 86_400_000


@dataclass(frozen=True)
class ReplayedRun:
    """What the streams logic published for one stub run, and the run's ground truth."""

    scenario: str
    seed: int
    rollups: list[MinuteRollup]
    incidents: list[Incident]
    truth: ScenarioTruth


def replayed_run(scenario: str, seed: int, shift: int = 0) -> ReplayedRun:
    """One stub run through `streams.replay` (sessionize, roll up, detect) in process."""
    stub = StubRun(
        RunOptions(
            seed=seed,
            members=MEMBERS,
            rate=RATE,
            duration_s=DURATION_S,
            scenario=scenario,
            start_ms=seed_epoch_ms(seed) + START_OFFSET_MS + shift * SHIFT_MS,
            warmup_s=WARMUP_S,
            drain=False,
            config=CONFIG,
        )
    )
    lines = [line for batch in stub.batches(5_000) for line in batch.lines]
    out = replay(lines)
    return ReplayedRun(scenario, seed, out.rollups, out.incidents, stub.scenario_truth())


def write_truth(truth: ScenarioTruth, path: Path) -> Path:
    """The run's `scenario.json`, as `streamwatch stub run` writes it."""
    truth.write(path)
    return path


def write_rollups_to_warehouse(root: Path, rollups: Sequence[MinuteRollup]) -> None:
    """The rows the warehouse sink would write for these rollups (same flatten, same files)."""
    spec = TABLE_BY_NAME["qoe_minute"]
    json_columns = {c.name for c in spec.columns if c.kind == "json"}
    now = datetime.now(UTC).isoformat()
    rows: list[dict[str, Any]] = []
    for offset, r in enumerate(rollups):
        flat = flatten_record(json.loads(r.model_dump_json()), spec)
        for name in json_columns & flat.keys():
            if not isinstance(flat[name], str):
                flat[name] = json.dumps(flat[name], separators=(",", ":"))
        flat.update(source_fields(0, offset, now))
        rows.append(flat)
    table, bad = rows_to_table(rows, spec.columns)
    assert not bad, bad
    write_partitioned(root, spec, table)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    body: Any
    headers: dict[str, str]
    at: float


@dataclass
class RecordingReceiver:
    """An HTTP server on a fixed port that records every POST; `down()` closes the port."""

    port: int
    requests: list[Received] = field(default_factory=list)
    status_by_path: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.requests.append(
                Received(request.path, body, dict(request.headers), time.monotonic())
            )
        status = self.status_by_path.get(request.path, 200)
        answer = "ok" if status < 400 else "invalid payload"
        return web.json_response({"status": answer}, status=status)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def up(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def down(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    def close(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def got(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]


def notification_id_of(r: Received) -> str:
    """The notification id a request carries, whatever the receiver kind."""
    if r.path == "/webhook":
        return str(r.body["notification_id"])
    if r.path == "/slack":
        return str(r.body["attachments"][0]["footer"]).split()[-1]
    if r.path == "/pagerduty":
        return f"{r.body['dedup_key']}|{r.body['event_action']}"
    raise AssertionError(f"unexpected path {r.path}")


def receivers_toml(receiver_url: str, alertmanager_url: str) -> str:
    """A receivers file pointing every kind at the recording receiver (and a real AM)."""
    return f"""
[receivers.webhook]
kind = "webhook"
url = "{receiver_url}/webhook"

[receivers.slack]
kind = "slack"
url = "{receiver_url}/slack"

[receivers.pagerduty]
kind = "pagerduty"
url = "{receiver_url}/pagerduty"
routing_key = "test-routing-key"

[receivers.alertmanager]
kind = "alertmanager"
url = "{alertmanager_url}"
"""
