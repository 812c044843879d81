"""Comparisons: two periods or two versions, their difference, and a KS test equal to scipy's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

pytestmark = pytest.mark.django_db

URL = "/api/history/compare"
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture
def churn(make_version, record):
    v1, v2 = make_version("churn", 1), make_version("churn", 2)
    rng = np.random.default_rng(11)
    scores = {
        "v1_week1": rng.beta(2, 5, 400).round(4),
        "v1_week2": rng.beta(2, 4, 300).round(4),
        "v2_week2": rng.beta(4, 3, 250).round(4),
    }
    record(v1, T0 + timedelta(hours=5), scores["v1_week1"].tolist())
    record(v1, T0 + WEEK + timedelta(hours=5), scores["v1_week2"].tolist())
    record(v2, T0 + WEEK + timedelta(hours=6), scores["v2_week2"].tolist())
    return scores


def compare(client, caller, **params) -> dict:
    response = client.get(URL, {"model": "churn", **params}, **caller.headers)
    assert response.status_code == 200, response.json()
    return response.json()


def test_two_periods_side_by_side_with_scipys_ks_test(client, viewer, churn):
    body = compare(
        client,
        viewer,
        a_start=T0.isoformat(),
        a_end=(T0 + WEEK).isoformat(),
        b_start=(T0 + WEEK).isoformat(),
        b_end=(T0 + 2 * WEEK).isoformat(),
    )

    a, b = churn["v1_week1"], np.concatenate([churn["v1_week2"], churn["v2_week2"]])
    expected = stats.ks_2samp(a, b)
    assert body["a"]["count"] == 400 and body["b"]["count"] == 550
    assert body["a"]["mean"] == pytest.approx(a.mean()) and body["b"]["mean"] == pytest.approx(b.mean())
    assert body["difference"]["mean"] == pytest.approx(b.mean() - a.mean())
    assert body["difference"]["count"] == 150
    assert body["ks_test"]["statistic"] == pytest.approx(expected.statistic)
    assert body["ks_test"]["p_value"] == pytest.approx(expected.pvalue)
    assert body["ks_test"]["sample_sizes"] == {"a": 400, "b": 550}


def test_two_versions_over_the_same_period(client, viewer, churn):
    body = compare(
        client, viewer, version_a=1, version_b=2, start=(T0 + WEEK).isoformat(), end=(T0 + 2 * WEEK).isoformat()
    )

    expected = stats.ks_2samp(churn["v1_week2"], churn["v2_week2"])
    assert (body["a"]["version"], body["b"]["version"]) == (1, 2)
    assert (body["a"]["count"], body["b"]["count"]) == (300, 250)
    assert body["ks_test"]["p_value"] == pytest.approx(expected.pvalue) and body["ks_test"]["p_value"] < 1e-6


def test_the_ks_sample_is_bounded_and_the_same_every_time(client, viewer, churn, settings):
    settings.HISTORY_COMPARE_SAMPLE_SIZE = 100
    params = {"version_a": 1, "version_b": 2, "start": T0.isoformat(), "end": (T0 + 2 * WEEK).isoformat()}

    first = compare(client, viewer, **params)["ks_test"]
    second = compare(client, viewer, **params)["ks_test"]

    assert first["sample_sizes"] == {"a": 100, "b": 100} and first["max_sample_size"] == 100
    assert first == second


def test_no_raw_scores_on_one_side_means_no_test(client, viewer, churn):
    body = compare(client, viewer, a_start="2026-01-01", a_end="2026-01-02", b_start="2026-03-02", b_end="2026-03-09")

    assert body["a"]["count"] == 0 and body["a"]["mean"] is None and "mean" not in body["difference"]
    assert body["ks_test"]["p_value"] is None and "retention" in body["ks_test"]["note"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"a_start": "2026-03-01", "a_end": "2026-03-02"},
        {"version_a": 1},
        {"version_a": 1, "version_b": 2, "a_start": "2026-03-01"},
        {"a_start": "2026-03-02", "a_end": "2026-03-01", "b_start": "2026-03-02", "b_end": "2026-03-03"},
        {"version_a": 1, "version_b": 7},
        {"version_a": 1, "version_b": 2, "tz": "Nowhere/Else"},
    ],
)
def test_incomplete_or_contradictory_parameters_are_a_400(client, viewer, churn, params):
    response = client.get(URL, {"model": "churn", **params}, **viewer.headers)

    assert response.status_code == 400 and response.json()["error"] == "validation_error"
