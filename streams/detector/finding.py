"""Finding departures: which dimension values are worse than their siblings or history."""

from __future__ import annotations

from collections.abc import Mapping

from contract import metrics
from contract.dimensions import ALL
from contract.records import IncidentMetric, MinuteCounts
from contract.sketch import LatencySketch, bucket_of
from streams.detector.model import (
    _RATES,
    _STALL_SHARE,
    DEFAULT_POLICY,
    METRICS,
    SHARE_METRIC,
    Baseline,
    DetectorPolicy,
    DetectorState,
    DimValue,
    Finding,
    _bkey,
)
from streams.detector.tail_stats import _binom_sf, _z_of


def _value(metric: IncidentMetric, c: MinuteCounts) -> float | None:
    if metric in _RATES:
        k, n = _RATES[metric]
        return metrics.ratio_pct(getattr(c, k), getattr(c, n))
    if metric == "rebuffer_pct":
        return c.rebuffer_pct
    return c.startup.quantile(0.95)


def _cohort(metric: IncidentMetric, c: MinuteCounts) -> float:
    if metric in _RATES:
        return float(getattr(c, _RATES[metric][1]))
    if metric == "rebuffer_pct":
        return c.watch_ms + c.rebuffer_ms
    return c.startup.count


def _big_enough(metric: IncidentMetric, c: MinuteCounts, p: DetectorPolicy) -> bool:
    need = {
        "playback_failure_pct": p.min_active_sessions,
        "start_failure_pct": p.min_window_plays,
        "rebuffer_pct": p.min_watch_ms,
        "startup_p95_ms": p.min_startup_samples,
    }[metric]
    if metric == "rebuffer_pct" and c.active_sessions < p.min_active_sessions:
        return False
    return _cohort(metric, c) >= need


def _affected(metric: IncidentMetric, c: MinuteCounts) -> int:
    if metric in _RATES:
        return int(getattr(c, _RATES[metric][0]))
    return c.active_sessions


def _departs(metric: IncidentMetric, x: float, ref: float, p: DetectorPolicy) -> bool:
    """Big enough in absolute and relative terms to matter to a viewer."""
    if metric in _RATES:
        return x - ref >= p.failure_min_delta and x >= ref * p.failure_min_ratio
    if metric == "rebuffer_pct":
        return x - ref >= p.rebuffer_min_delta and x >= ref * p.rebuffer_min_ratio
    return x - ref >= p.startup_min_delta_ms and x >= ref * p.startup_min_ratio


def _sibling_z(
    metric: IncidentMetric, c: MinuteCounts, rest: MinuteCounts, p: DetectorPolicy
) -> float:
    """How surprising this value is next to the rest of the traffic, as a z-score.

    Exact tails for counts: small cohorts are where a normal approximation pages on noise.
    """
    if metric in _RATES:
        k, n = _RATES[metric]
        rate = max(getattr(rest, k), 0.5) / max(getattr(rest, n), 1)
        return _z_of(_binom_sf(getattr(c, k), getattr(c, n), rate))
    if metric == "rebuffer_pct":
        # Stall time is heavy-tailed and clustered (one bad line stalls again and again),
        # so the test counts viewers: sessions that stalled, against the rest's share.
        rate = max(rest.rebuffering_sessions, 0.5) / max(rest.active_sessions, 1)
        return _z_of(_binom_sf(c.rebuffering_sessions, c.active_sessions, rate))
    # Startup: share of this value's starts slower than the rest's p95, against 5 %.
    ref = rest.startup.quantile(0.95)
    return 0.0 if ref is None else _share_slower_z(c, ref)


def _finding(
    metric: IncidentMetric, dim: DimValue, x: float, ref: float, c: MinuteCounts, z: float
) -> Finding:
    return Finding(metric, dim, x, ref, _cohort(metric, c), _affected(metric, c), z)


def _history_z(
    metric: IncidentMetric,
    x: float,
    b: Baseline,
    c: MinuteCounts,
    share: Baseline | None = None,
) -> float:
    """z of this minute against the value's own EWMA baseline.

    The sampling noise of this minute's estimate (binomial for the two percentages) adds
    to the baseline's variance. A p95 from a few dozen starts is too noisy for a plain
    z-score, so startup asks the robust question instead: are far more than 5 % of this
    minute's starts slower than the usual p95?
    """
    if metric == "startup_p95_ms":
        return _share_slower_z(c, b.mean)
    if metric in _RATES:
        k, n = _RATES[metric]
        rate = min(max(b.mean / 100, 1e-4), 1.0)
        return _z_of(_binom_sf(getattr(c, k), getattr(c, n), rate))
    # Rebuffer: viewers who stalled against the usual share of stalling viewers.
    if share is None or share.n == 0:
        return 0.0
    rate = min(max(share.mean, 1e-4), 1.0)
    return _z_of(_binom_sf(c.rebuffering_sessions, c.active_sessions, rate))


def _share_slower_z(c: MinuteCounts, p95_ref: float) -> float:
    """z of the share of starts slower than `p95_ref`, against 5 % (exact binomial)."""
    slow = sum(k for b, k in c.startup.buckets.items() if b > bucket_of(p95_ref))
    return _z_of(_binom_sf(slow, c.startup.count, 0.05))


def _floored(b: Baseline | None, floor: Baseline | None) -> Baseline | None:
    """`b` with its mean raised to `floor`'s when `floor` is warm and higher."""
    if b is None or floor is None or floor.n == 0 or floor.mean <= b.mean:
        return b
    return Baseline(mean=floor.mean, var=b.var, n=b.n)


def _start_view(
    state: DetectorState, values: Mapping[DimValue, MinuteCounts]
) -> dict[DimValue, MinuteCounts]:
    """Start failures and plays of this minute plus the previous ones kept in `state`."""
    sums: dict[DimValue, list[int]] = {dim: [c.failed_starts, c.plays] for dim, c in values.items()}
    for minute in state.recent_starts.values():
        for key, (k, n) in minute.items():
            d, _, v = key.partition("|")
            acc = sums.setdefault((d, v), [0, 0])
            acc[0] += k
            acc[1] += n
    return {dim: _counts_of(failed_starts=k, plays=n) for dim, (k, n) in sums.items()}


def _in_play_view(values: Mapping[DimValue, MinuteCounts]) -> dict[DimValue, MinuteCounts]:
    """Active sessions and the failures after first frame (start failures are their own
    metric: one fault, one incident)."""
    return {
        dim: _counts_of(
            active_sessions=c.active_sessions,
            failed_sessions=max(c.failed_sessions - c.failed_starts, 0),
        )
        for dim, c in values.items()
    }


_NO_COUNTS = MinuteCounts()  # its defaults, copied by `_counts_of`, never changed
_NO_SKETCH = LatencySketch()
_new = object.__new__
_set = object.__setattr__


def _counts_of(**counters: int) -> MinuteCounts:
    """`MinuteCounts(**counters)` for int counters, without validating every one (the
    views make one per dimension value and minute).

    Built as pydantic's `model_construct` builds a model (its four instance attributes),
    from the defaults of an empty one; `tests/test_streams_counts_ops.py` compares the
    two, fields-set included.
    """
    fields = _NO_COUNTS.__dict__.copy()
    fields.update(counters)
    sketch = _new(LatencySketch)
    _set(sketch, "__dict__", {**_NO_SKETCH.__dict__, "buckets": {}})
    _set(sketch, "__pydantic_fields_set__", set())
    _set(sketch, "__pydantic_extra__", None)
    _set(sketch, "__pydantic_private__", None)
    fields["startup"] = sketch
    fields["errors_by_code"] = {}
    out = _new(MinuteCounts)
    _set(out, "__dict__", fields)
    _set(out, "__pydantic_fields_set__", set(counters))
    _set(out, "__pydantic_extra__", None)
    _set(out, "__pydantic_private__", None)
    return out


def views(
    state: DetectorState, values: Mapping[DimValue, MinuteCounts]
) -> dict[IncidentMetric, Mapping[DimValue, MinuteCounts]]:
    """The counts each metric is judged on: this minute, or a few for start failures;
    playback failures without the start failures (judged by start_failure_pct)."""
    out: dict[IncidentMetric, Mapping[DimValue, MinuteCounts]] = {m: values for m in METRICS}
    out["start_failure_pct"] = _start_view(state, values)
    out["playback_failure_pct"] = _in_play_view(values)
    out[SHARE_METRIC] = values
    return out


def _share_findings(
    state: DetectorState, values: Mapping[DimValue, MinuteCounts], policy: DetectorPolicy
) -> list[Finding]:
    """Titles whose share of this minute's plays is far above their usual share.

    Shares, not plays: the daily load ramp moves every title's plays, not its share.
    """
    total = values.get((ALL, ALL))
    out: list[Finding] = []
    if total is None or total.plays <= 0:
        return out
    for dim, c in values.items():
        if dim[0] != "title_id" or c.plays < policy.min_plays:
            continue
        b = state.baselines.get(_bkey(SHARE_METRIC, dim))
        if b is None or b.n < policy.warmup_minutes:
            continue
        x = 100.0 * c.plays / total.plays
        z = _z_of(_binom_sf(c.plays, total.plays, min(max(b.mean / 100, 1e-4), 1.0)))
        if (
            z >= policy.z_threshold
            and x - b.mean >= policy.share_min_delta
            and x >= b.mean * policy.share_min_ratio
        ):
            out.append(Finding(SHARE_METRIC, dim, x, b.mean, float(c.plays), c.plays, z))
    return out


def find(
    state: DetectorState,
    values: Mapping[DimValue, MinuteCounts],
    policy: DetectorPolicy = DEFAULT_POLICY,
    per_metric: Mapping[IncidentMetric, Mapping[DimValue, MinuteCounts]] | None = None,
) -> dict[IncidentMetric, list[Finding]]:
    """Every anomalous dimension value per metric in this minute (no state change).

    `per_metric`: `views(state, values)`, when the caller has made it already.
    """
    out: dict[IncidentMetric, list[Finding]] = {m: [] for m in (*METRICS, SHARE_METRIC)}
    if (ALL, ALL) not in values:
        return out
    if per_metric is None:
        per_metric = views(state, values)
    out[SHARE_METRIC] = _share_findings(state, values, policy)
    for metric in METRICS:
        view = per_metric[metric]
        for dim, c in view.items():
            finding = _value_finding(state, metric, dim, c, view[(ALL, ALL)], policy)
            if finding is not None:
                out[metric].append(finding)
    return out


def _value_finding(
    state: DetectorState,
    metric: IncidentMetric,
    dim: DimValue,
    c: MinuteCounts,
    total: MinuteCounts,
    policy: DetectorPolicy,
) -> Finding | None:
    """One value's departure from its siblings, else from its own history, if any."""
    if not _big_enough(metric, c, policy):
        return None
    x = _value(metric, c)
    if x is None:
        return None
    b, hz = _history(state, metric, dim, x, c, policy)
    if dim != (ALL, ALL):
        rest = total.minus(c)
        r = _value(metric, rest)
        if r is not None and _big_enough(metric, rest, policy):
            z = _sibling_z(metric, c, rest, policy)
            # A value that is always worse than its siblings (a poor ISP) is
            # judged by its own history once it has one: no page for its usual.
            chronic = hz is not None and hz < policy.chronic_veto_z
            if z >= policy.z_threshold and _departs(metric, x, r, policy) and not chronic:
                return _finding(metric, dim, x, r, c, z)
    if (
        hz is not None
        and b is not None
        and hz >= policy.z_threshold
        and _departs(metric, x, b.mean, policy)
    ):
        return _finding(metric, dim, x, b.mean, c, hz)
    return None


def _history(
    state: DetectorState,
    metric: IncidentMetric,
    dim: DimValue,
    x: float,
    c: MinuteCounts,
    policy: DetectorPolicy,
) -> tuple[Baseline | None, float | None]:
    """The value's baseline and its z against it (None until the baseline is warm)."""
    b = state.baselines.get(_bkey(metric, dim))
    # A p95 of a few dozen starts is too noisy (and biased low) to hold against
    # its own history; per value, startup is judged against siblings only.
    history_ok = metric != "startup_p95_ms" or dim == (ALL, ALL)
    if not history_ok or b is None or b.n < policy.warmup_minutes:
        return b, None
    share = state.baselines.get(_bkey(_STALL_SHARE, dim))
    if dim != (ALL, ALL):
        # A value that never failed in its short history is not expected to
        # never fail: its usual level is at least the aggregate's usual level.
        b = _floored(b, state.baselines.get(_bkey(metric, (ALL, ALL)))) or b
        share = _floored(share, state.baselines.get(_bkey(_STALL_SHARE, (ALL, ALL))))
    return b, _history_z(metric, x, b, c, share)


def _sibling_anomalous(
    metric: IncidentMetric,
    c: MinuteCounts,
    rest: MinuteCounts,
    z_min: float,
    policy: DetectorPolicy,
) -> bool:
    """`c` is significantly and materially worse than `rest` (no minimum cohort)."""
    if _cohort(metric, c) <= 0 or _cohort(metric, rest) <= 0:
        return False
    if metric in _RATES and getattr(c, _RATES[metric][0]) <= 0:
        return False
    x, r = _value(metric, c), _value(metric, rest)
    if x is None or r is None or not _departs(metric, x, r, policy):
        return False
    return _sibling_z(metric, c, rest, policy) >= z_min
