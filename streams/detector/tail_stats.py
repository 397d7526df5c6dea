"""Tail probabilities: exact binomial and Poisson tails, z-scores."""

from __future__ import annotations

import math
from statistics import NormalDist


def _two_proportion_z(k1: float, n1: float, k2: float, n2: float) -> float:
    if n1 <= 0 or n2 <= 0:
        return 0.0
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(max(p * (1 - p), 1e-9) * (1 / n1 + 1 / n2))
    return (k1 / n1 - k2 / n2) / se


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p); exact (small counts are where faults start)."""
    if k <= n * p:
        return 1.0  # only the upper tail matters here
    if k > n:
        return 0.0
    p = min(max(p, 1e-9), 1 - 1e-9)
    log_p, log_q = math.log(p), math.log(1 - p)
    lg_n = math.lgamma(n + 1)
    total = 0.0
    for i in range(k, n + 1):
        term = math.exp(
            lg_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        )
        total += term
        if term < 1e-15 * total:
            break  # past the mode, terms only shrink
    return min(1.0, total)


def _poisson_sf(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam)."""
    if k <= lam:
        return 1.0
    lam = max(lam, 1e-9)
    total = 0.0
    for i in range(k, k + 10_000):
        term = math.exp(i * math.log(lam) - lam - math.lgamma(i + 1))
        total += term
        if term < 1e-15 * total:
            break
    return min(1.0, total)


def _z_of(p_value: float) -> float:
    """The one-sided z-score with the same tail probability (for one threshold)."""
    return -NormalDist().inv_cdf(min(max(p_value, 1e-300), 0.5))
