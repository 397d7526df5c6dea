"""Stub configuration: how the simulated world and players behave.

These are the stub's own knobs. Anything an operator would want to set per environment
(defaults for the run command) is a candidate for `streamwatch.settings.Settings`; until it
moves there it lives here, frozen, so a run is fully described by (config, seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from platform_stub.control_plane.services import ControlPlaneConfig


@dataclass(frozen=True)
class PlayerConfig:
    """Constants of the player model (timings in ms, throughput in kbps)."""

    tick_ms: int = 2_500  # simulation step; heartbeats fall on tick boundaries
    heartbeat_ms: int = 10_000
    segment_ms: int = 4_000
    max_buffer_ms: int = 30_000
    resume_buffer_ms: int = 4_000  # a stall ends once one segment is buffered again
    startup_bitrate_cap_kbps: int = 3_000  # players start conservative, then climb
    # ABR: pick the highest rung under `abr_safety` x estimate; upshift only with a
    # comfortable buffer, downshift at once when the estimate or the buffer drops.
    abr_safety: float = 0.75
    abr_upshift_buffer_ms: int = 10_000
    abr_panic_buffer_ms: int = 5_000
    abr_hold_ticks: int = 3
    abr_ewma_alpha: float = 0.35
    # Throughput dips (interference, handovers): how often, how long, how deep.
    dip_per_hour: float = 5.0
    dip_median_s: float = 40.0
    dip_factor: float = 0.02
    # Watching behaviour.
    watch_median_s: float = 420.0
    watch_sigma: float = 1.15
    startup_patience_median_s: float = 11.0
    stall_patience_median_s: float = 40.0
    change_mind_p: float = 0.012  # exits during startup for no technical reason
    pause_per_hour: float = 1.5
    pause_median_s: float = 35.0
    seek_per_hour: float = 1.2


@dataclass(frozen=True)
class StubConfig:
    """Everything that shapes one stub run besides the seed and the scenario."""

    members: int = 10_000
    titles: int = 300
    sessions_per_member_day: float = 2.0
    player: PlayerConfig = PlayerConfig()
    # Fraction of the run (by simulated time) during which a fault scenario is active.
    fault_start_frac: float = 0.3
    fault_end_frac: float = 0.7
    # Output sizes: events per sink batch; the HTTP collector accepts at most 1000.
    batch_events: int = 1_000
    # The simulated services a play goes through (spans on telemetry.spans.v1).
    control_plane: ControlPlaneConfig = field(default_factory=ControlPlaneConfig)
