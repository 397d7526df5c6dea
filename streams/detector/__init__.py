"""Incident detection with root-cause localisation over merged minute rollups.

Per minute the detector sees every dimension value's `MinuteCounts` (partials merged) and,
for three metrics (playback failure %, rebuffer %, startup p95), asks of every value with a
big enough cohort:

1. siblings: is it significantly worse than the rest of the traffic in the same minute
   (the aggregate without it)? This catches faults present from the very first minute,
   when no history exists yet;
2. history: is it significantly worse than its own EWMA baseline (mean and variance,
   updated only with normal minutes)? This catches faults hitting everything ("all").

Significance needs all of: a minimum cohort (small cohorts never page), a minimum
absolute and relative departure, and a tail probability at least as small as a z-score of
`z_threshold` (exact binomial for failure %; exact binomial on the share of viewers who
stalled for rebuffer %, because stall time is heavy-tailed and clustered in a few bad
lines; exact binomial on "share of starts slower than the reference p95" for startup p95).
Exact tails matter: a normal approximation with a handful of expected failures pages on
noise once many values are tested every minute.

Localisation: among anomalous values, the narrowest one (smallest cohort) whose removal
takes away most of the aggregate's excess over the typical level (see `localise`) is the
root cause; if none does, "all" when it is anomalous itself, else the value with the
largest excess. An open incident with the same metric is updated, not raised again, while its
dimension value stays anomalous; it resolves after `resolve_after_minutes` normal minutes.

Modules: `model` (policy, state, findings), `tail_stats` (exact tails), `finding` (which
values depart), `localisation` (which value explains the excess), `lifecycle` (incidents
opened, updated and resolved; baselines learnt). This package's names are its public API.
"""

from streams.detector.lifecycle import evaluate, incident_id, merge_partials
from streams.detector.model import DEFAULT_POLICY, DetectorPolicy, DetectorState

__all__ = [
    "DEFAULT_POLICY",
    "DetectorPolicy",
    "DetectorState",
    "evaluate",
    "incident_id",
    "merge_partials",
]
