"""The fixed histogram of main scores that roll-ups keep, and the statistics read from it.

Pure computation, no Django. A main score can be a probability, a margin in percent, a price
or hours, so bins do not depend on a range: they are logarithmic in the magnitude, one bin per
factor of ``GAMMA``, mirrored for negative values (the scheme of DDSketch). Every bin is the
same for every model, version and hour, so histograms merge by adding counts, and a
percentile read from the merged histogram is within ``RELATIVE_ACCURACY`` of the exact value
(then clamped to the exact minimum and maximum, which roll-ups also keep).

Bin numbers (kept as JSON object keys, so as strings): 0 for ``|x| < MIN_MAGNITUDE``; ``k >= 1`` for positive ``x`` with
``GAMMA**(k - OFFSET) <= x < GAMMA**(k - OFFSET + 1)``; ``-k`` for the mirrored negative ``x``.
They grow with ``x``, so sorting bins sorts values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

# 2 % per bin: a percentile is within 1 % of the true value, and a histogram spanning a
# probability's 1e-4..1 range has ~470 bins at most (a few dozen in practice per hour).
GAMMA = 1.02
LN_GAMMA = math.log(GAMMA)
RELATIVE_ACCURACY = (GAMMA - 1) / (GAMMA + 1)
# Scores closer to zero than this count as zero: below any rounding the models apply.
MIN_MAGNITUDE = 1e-6
OFFSET = 1 - math.floor(math.log(MIN_MAGNITUDE) / LN_GAMMA)  # the smallest magnitude lands in bin 1
# Beyond 1e12 (larger than any amount or price here), values share the last bin.
MAX_BIN = math.floor(math.log(1e12) / LN_GAMMA) + OFFSET

PERCENTILES = (5, 25, 50, 75, 95)


def score_bin(value: float) -> int:
    """The bin of one value (the SQL in history.aggregates computes the same)."""
    magnitude = abs(value)
    if magnitude < MIN_MAGNITUDE:
        return 0
    k = min(math.floor(math.log(magnitude) / LN_GAMMA) + OFFSET, MAX_BIN)
    return k if value > 0 else -k


def bin_value(k: int) -> float:
    """The value that stands for bin ``k``: the point with the same relative error to both edges."""
    if k == 0:
        return 0.0
    low = GAMMA ** (abs(k) - OFFSET)
    value = 2 * low * GAMMA / (GAMMA + 1)
    return value if k > 0 else -value


@dataclass
class Summary:
    """Everything trends and comparisons show for a set of predictions, mergeable by adding."""

    count: int = 0
    score_count: int = 0
    score_sum: float = 0.0
    score_sumsq: float = 0.0
    score_min: float | None = None
    score_max: float | None = None
    histogram: dict[str, int] = field(default_factory=dict)  # bin number (as text) -> count
    classes: dict[str, int] = field(default_factory=dict)
    outcome_count: int = 0
    error_count: int = 0
    error_sum: float = 0.0
    error_abs_sum: float = 0.0
    error_sq_sum: float = 0.0

    def add(self, other: Summary) -> None:
        self.count += other.count
        self.score_count += other.score_count
        self.score_sum += other.score_sum
        self.score_sumsq += other.score_sumsq
        self.score_min = _min(self.score_min, other.score_min)
        self.score_max = _max(self.score_max, other.score_max)
        _add_counts(self.histogram, other.histogram)
        _add_counts(self.classes, other.classes)
        self.outcome_count += other.outcome_count
        self.error_count += other.error_count
        self.error_sum += other.error_sum
        self.error_abs_sum += other.error_abs_sum
        self.error_sq_sum += other.error_sq_sum

    def statistics(self) -> dict[str, float | int | dict | None]:
        """Chart-ready numbers; a statistic with nothing to compute from is null, never 0."""
        n = self.score_count
        mean = self.score_sum / n if n else None
        variance = self.score_sumsq / n - mean * mean if n else None
        if variance is not None and variance <= 1e-12 * max(mean * mean, 1.0):
            variance = 0.0  # equal scores: what is left is rounding in the sum of squares
        percentiles = histogram_percentiles(self.histogram, PERCENTILES, self.score_min, self.score_max)
        stats: dict[str, float | int | dict | None] = {
            "count": self.count,
            "mean": mean,
            "std": math.sqrt(variance) if variance is not None else None,
            "min": self.score_min,
            "max": self.score_max,
        }
        stats.update({f"p{q:02d}": value for q, value in zip(PERCENTILES, percentiles, strict=True)})
        total_classes = sum(self.classes.values())
        stats["class_shares"] = {
            label: count / total_classes for label, count in sorted(self.classes.items()) if total_classes
        }
        stats["outcomes"] = self.outcome_count
        stats["outcome_coverage"] = self.outcome_count / self.count if self.count else None
        m = self.error_count
        stats["mean_error"] = self.error_sum / m if m else None
        stats["mean_abs_error"] = self.error_abs_sum / m if m else None
        stats["rmse"] = math.sqrt(self.error_sq_sum / m) if m else None
        return stats


def histogram_percentiles(
    histogram: Mapping[str, int], quantiles: Iterable[float], low: float | None, high: float | None
) -> list[float | None]:
    """Nearest-rank percentiles (``q`` in 0..100) from a bin histogram, clamped to [low, high]."""
    quantiles = list(quantiles)
    if not histogram:
        return [None] * len(quantiles)
    bins = np.fromiter(map(int, histogram.keys()), dtype=np.int64, count=len(histogram))
    counts = np.fromiter(histogram.values(), dtype=np.int64, count=len(histogram))
    order = np.argsort(bins)
    bins, cumulative = bins[order], np.cumsum(counts[order])
    total = int(cumulative[-1])
    if not total:
        return [None] * len(quantiles)
    ranks = np.maximum(1, np.ceil(np.asarray(quantiles, dtype=float) / 100 * total))
    chosen = bins[np.searchsorted(cumulative, ranks)]
    values = [bin_value(int(k)) for k in chosen]
    if low is not None:
        values = [max(value, low) for value in values]
    if high is not None:
        values = [min(value, high) for value in values]
    return values


def histogram_of(values: Iterable[float]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        k = str(score_bin(value))
        counts[k] = counts.get(k, 0) + 1
    return counts


def _add_counts(into: dict, other: Mapping) -> None:
    for key, count in other.items():
        into[key] = into.get(key, 0) + count


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
