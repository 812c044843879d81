"""The fixed score histogram and the time buckets, on their own (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from history.buckets import buckets_between
from history.scores import RELATIVE_ACCURACY, Summary, bin_value, histogram_of, histogram_percentiles, score_bin


def test_every_value_is_within_the_accuracy_of_its_bin_and_bins_sort_like_values():
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.lognormal(0, 6, 5_000), -rng.lognormal(2, 3, 5_000), [0.0, 1e-9, -1e-9]])

    bins = [score_bin(v) for v in values]

    for value, k in zip(values, bins, strict=True):
        assert abs(bin_value(k) - value) <= RELATIVE_ACCURACY * abs(value) + 1e-6
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(np.array(bins)[order]) >= 0)


@pytest.mark.parametrize("q", [1, 5, 25, 50, 75, 95, 99])
def test_percentiles_from_merged_histograms_match_numpy(q):
    rng = np.random.default_rng(q)
    parts = [rng.normal(20, 15, 700), rng.normal(-5, 3, 300), rng.beta(2, 5, 500)]
    merged = Summary()
    for part in parts:
        merged.add(Summary(histogram=histogram_of(part.tolist())))

    everything = np.concatenate(parts)
    [value] = histogram_percentiles(merged.histogram, [q], everything.min(), everything.max())

    exact = np.percentile(everything, q, method="inverted_cdf")
    assert value == pytest.approx(exact, rel=RELATIVE_ACCURACY, abs=1e-6)


def test_an_empty_summary_has_counts_of_zero_and_no_statistics():
    stats = Summary().statistics()

    assert stats["count"] == 0 and stats["outcomes"] == 0
    assert stats["mean"] is None and stats["p50"] is None and stats["outcome_coverage"] is None


@pytest.mark.parametrize(
    ("zone", "exact"),
    [
        ("UTC", True),
        ("Europe/Paris", True),
        ("America/New_York", True),
        ("Asia/Kolkata", False),
        ("Asia/Kathmandu", False),
    ],
)
def test_days_are_exact_in_whole_hour_zones_only(zone, exact):
    buckets = buckets_between(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), "day", ZoneInfo(zone))

    assert buckets.exact is exact
    assert all(b > a for a, b in zip(buckets.edges, buckets.edges[1:], strict=False))


def test_hours_are_utc_hours_labelled_in_the_zone_and_map_back():
    buckets = buckets_between(
        datetime(2026, 3, 1, 10, 20, tzinfo=UTC),
        datetime(2026, 3, 1, 13, 0, tzinfo=UTC),
        "hour",
        ZoneInfo("Asia/Kolkata"),
    )

    assert [start.isoformat() for start in buckets.starts] == [
        "2026-03-01T15:30:00+05:30",
        "2026-03-01T16:30:00+05:30",
        "2026-03-01T17:30:00+05:30",
    ]
    assert buckets.index_of(datetime(2026, 3, 1, 12, tzinfo=UTC)) == 2
    assert buckets.index_of(datetime(2026, 3, 1, 13, tzinfo=UTC)) is None
