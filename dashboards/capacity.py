"""Capacity arithmetic: pure functions, unit tested, no I/O.

"Today's behaviour" is measured from the warehouse (per member: peak concurrency, peak
egress, peak events/s, bytes/day); the what-if scales it linearly to N members. Linear is
the honest first answer: the per-member rates already hold the mix of devices, bitrates and
viewing hours; what would change them (new devices, codecs) is not in today's data.
"""

from __future__ import annotations

from dataclasses import dataclass

BITS_PER_KBIT = 1_000
BYTES_PER_TB = 1e12


def egress_bits(avg_bitrate_kbps: float | None, watch_ms: float) -> float:
    """Bits a session streamed: time-weighted bitrate x time watched."""
    if avg_bitrate_kbps is None or watch_ms <= 0:
        return 0.0
    return avg_bitrate_kbps * BITS_PER_KBIT * watch_ms / 1000.0


def spread_over_minute(
    bits: float, play_start_ms: int, play_end_ms: int, minute_start_ms: int
) -> float:
    """The part of a session's bits streamed in one minute, spread evenly over its playing
    interval [play_start, play_end) (the same interval that counts it as a concurrent viewer).
    """
    span = play_end_ms - play_start_ms
    if span <= 0:
        return 0.0
    overlap = min(play_end_ms, minute_start_ms + 60_000) - max(play_start_ms, minute_start_ms)
    return bits * max(0, overlap) / span


def gbps(bits_in_minute: float) -> float:
    """Average Gbit/s over a minute holding `bits_in_minute` bits."""
    return bits_in_minute / 60.0 / 1e9


@dataclass(frozen=True)
class Behaviour:
    """Today's measured behaviour, the input of the what-if."""

    members: int
    peak_concurrency: float
    peak_egress_gbps: float
    peak_events_per_s: float
    telemetry_bytes_per_day: float
    storage_bytes_per_day: float


@dataclass(frozen=True)
class Projection:
    """The what-if answer at `members` members."""

    members: int
    peak_concurrency: float
    peak_egress_tbps: float
    peak_events_per_s: float
    telemetry_tb_per_day: float
    storage_tb_per_day: float

    def sentence(self) -> str:
        """The one line an SRE reads out in a capacity review."""
        return (
            f"At {self.members:,} members with today's behaviour: peak concurrency "
            f"{self.peak_concurrency:,.0f}, egress {self.peak_egress_tbps:,.2f} Tbps, "
            f"{self.peak_events_per_s:,.0f} events/s, "
            f"{self.telemetry_tb_per_day + self.storage_tb_per_day:,.2f} TB/day "
            f"(telemetry {self.telemetry_tb_per_day:,.2f}, stored {self.storage_tb_per_day:,.2f})."
        )


def project(today: Behaviour, members: int) -> Projection:
    """Scale today's per-member behaviour linearly to `members` members."""
    if members < 0:
        raise ValueError("members must be >= 0")
    k = 0.0 if today.members <= 0 else members / today.members
    return Projection(
        members=members,
        peak_concurrency=today.peak_concurrency * k,
        peak_egress_tbps=today.peak_egress_gbps * k / 1000.0,
        peak_events_per_s=today.peak_events_per_s * k,
        telemetry_tb_per_day=today.telemetry_bytes_per_day * k / BYTES_PER_TB,
        storage_tb_per_day=today.storage_bytes_per_day * k / BYTES_PER_TB,
    )


def edge_share(edge_bits: float, origin_bits: float) -> float | None:
    """Share of bytes served from the edge (0..1), None when nothing was served."""
    total = edge_bits + origin_bits
    return None if total <= 0 else edge_bits / total
