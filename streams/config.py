"""Tunables of the stream workers, with documented defaults.

They live here (not in `streamwatch.settings`) until the shared Settings grows a streams
block; `from_env` reads `STREAMWATCH_STREAMS_*` overrides so nothing is hard-wired.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace

from streams.detector import DetectorPolicy
from streams.rollup import RollupPolicy
from streams.sessionizer import SessionPolicy


@dataclass(frozen=True)
class StreamsConfig:
    """Batching, dedupe and state-keeping knobs of `streams.app`."""

    batch_size: int = 500
    batch_within_s: float = 0.5
    # Event ids are kept per session until its last event is this far (or the sessions'
    # inactivity timeout + closed retention, if longer) behind its partition's newest event;
    # then one marker per closed session is kept for `dedupe_horizon_ms` (streams.dedupe).
    dedupe_ttl_ms: int = 30 * 60_000
    dedupe_horizon_ms: int = 7 * 86_400_000
    dedupe_max_keys_per_partition: int = 1_000_000
    # Open sessions and windows of a partition are checked for closing every this much
    # event time (never wall time: a replay after a crash must close exactly the same).
    scan_step_ms: int = 5_000
    seen_purge_every_s: float = 10.0  # how often expired event ids leave the seen-set
    # A minute is judged once every partition has closed it (streams/minute_gate.py); a
    # partition that publishes nothing for this long (the partials' record time) is taken
    # as idle and not waited for.
    detector_silence_s: float = 120.0
    commit_interval_s: float = 1.0
    # How often the one pass commits its partitions' states (`QoeAgent.checkpoint`): a
    # session is written once per interval, not once per batch it is in. What a crash
    # costs: the input since the last checkpoint is applied again (its outputs, the same,
    # published again). bench_worker, 400k events: 82 us CPU per event committing every
    # batch, 60 at 2 s, 51 at 5 s, 50 at 10 s.
    checkpoint_interval_s: float = 5.0
    # Kafka drops a worker that stopped heartbeating (e.g. killed) after this long; until
    # then its partitions wait, and a restarted worker waits for the rebalance.
    broker_session_timeout_s: float = 60.0
    producer_max_batch_bytes: int = 1_000_000
    producer_linger_s: float = 0.005
    # Sessions fed without a validate step in front (`streams.replay`) dedupe by the last
    # few event ids; the worker's own sessions keep none (`behind_id_dedupe`).
    session: SessionPolicy = field(default_factory=lambda: SessionPolicy(max_seen_ids=64))
    rollup: RollupPolicy = field(default_factory=RollupPolicy)
    detector: DetectorPolicy = field(default_factory=DetectorPolicy)

    def behind_id_dedupe(self) -> StreamsConfig:
        """This config for sessions behind the worker's validate step.

        That step drops every event id it has seen for as long as the session can change
        (`streams.dedupe`), and sessions drop the pipeline's own redelivery by log offset;
        so its sessions keep no event ids. Those ids were 40 % of a stored session's bytes,
        written (with the undo image) for every batch the session is in.
        """
        return replace(self, session=replace(self.session, max_seen_ids=0))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StreamsConfig:
        """Defaults overridden by `STREAMWATCH_STREAMS_<FIELD>` (scalar fields only)."""
        env = os.environ if environ is None else environ
        updates: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"STREAMWATCH_STREAMS_{f.name.upper()}")
            if raw is None or f.type not in ("int", "float"):
                continue
            updates[f.name] = int(raw) if f.type == "int" else float(raw)
        return cls(**updates)  # type: ignore[arg-type]
