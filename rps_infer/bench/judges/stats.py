"""Paired ratios with a distribution-free confidence interval (the A/B gate's statistics).

Each A/B case yields n block pairs; a pair's log ratio is ``log(head / base)`` of the two
blocks' medians. The estimate is the Hodges-Lehmann pseudo-median of those log ratios (the
median of all pairwise averages, the "Walsh averages"), and the interval comes from the
exact null distribution of Wilcoxon's signed-rank statistic: the textbook interval that
R's ``wilcox.test(conf.int = TRUE)`` reports. It assumes only that the pair log ratios are
independent and symmetric about their centre, which interleaved blocks on one machine
come close to; a few outlying pairs (a noisy moment that caught one block) move it little.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A ratio and its confidence interval (``low`` / ``high``), from ``pairs`` block pairs."""

    ratio: float
    low: float
    high: float
    pairs: int
    confidence: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready."""
        return {"ratio": self.ratio, "low": self.low, "high": self.high, "pairs": self.pairs,
                "confidence": self.confidence}


@functools.cache
def _signed_rank_cdf(n: int) -> tuple[float, ...]:
    """P(W+ <= k) for k = 0..n(n+1)/2 under the null hypothesis, W+ the sum of the ranks of
    the positive differences among n (no ties): counts of subsets of {1..n} by their sum."""
    total = n * (n + 1) // 2
    counts = np.zeros(total + 1)
    counts[0] = 1.0
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return tuple(np.cumsum(counts) / 2.0**n)


def critical_rank(n: int, alpha: float) -> int:
    """The largest k >= 1 with P(W+ <= k - 1) <= alpha: the k-th smallest Walsh average is a
    lower confidence bound at level 1 - alpha (0 when n is too small for that level)."""
    cdf = _signed_rank_cdf(n)
    k = 0
    while k < len(cdf) and cdf[k] <= alpha:
        k += 1
    return k


def walsh_averages(values: np.ndarray) -> np.ndarray:
    """All (x_i + x_j) / 2 for i <= j, sorted."""
    i, j = np.triu_indices(len(values))
    return np.sort((values[i] + values[j]) / 2.0)


def paired_ratio(head: np.ndarray, base: np.ndarray, confidence: float = 0.95) -> Interval:
    """The ratio head/base from paired block medians, with a two-sided interval at
    ``confidence`` (each bound is then a one-sided bound at ``(1 + confidence) / 2``)."""
    head, base = np.asarray(head, float), np.asarray(base, float)
    if head.shape != base.shape or head.ndim != 1 or len(head) < 2:
        raise ValueError(f"need two equal-length series of at least 2 pairs, got {head.shape} and {base.shape}")
    return log_interval(np.log(head / base), confidence)


def log_interval(log_ratios: np.ndarray, confidence: float = 0.95) -> Interval:
    """:func:`paired_ratio` for ready-made log ratios (e.g. a suite's mean per block)."""
    d = np.asarray(log_ratios, float)
    walsh = walsh_averages(d)
    k = critical_rank(len(d), (1.0 - confidence) / 2.0)
    if k == 0:  # too few pairs for this confidence: an interval that decides nothing
        low, high = -math.inf, math.inf
    else:
        low, high = walsh[k - 1], walsh[len(walsh) - k]
    return Interval(math.exp(float(np.median(walsh))), math.exp(low), math.exp(high), len(d), confidence)
