"""Trends: buckets in any time zone, empty ones present, the same from roll-ups as from raw rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from history.scores import RELATIVE_ACCURACY
from history.services import OutcomeItem, outcomes_record, rollups_refresh

pytestmark = pytest.mark.django_db

URL = "/api/history/trends"
DAY = timedelta(days=1)
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday


def trend(client, caller, **params) -> dict:
    response = client.get(URL, {"model": "churn", **params}, **caller.headers)
    assert response.status_code == 200, response.json()
    return response.json()


def points(body: dict, series: int = 0) -> list[dict]:
    return body["series"][series]["points"]


@pytest.fixture
def churn(make_version, record):
    version = make_version("churn")
    rng = np.random.default_rng(3)
    scores = {
        "day0": rng.beta(2, 5, 300).round(4).tolist(),
        "day2": rng.beta(5, 2, 200).round(4).tolist(),
    }
    bands = lambda values: [{"risk_band": "high" if s >= 0.5 else "low"} for s in values]  # noqa: E731
    ids = record(version, T0 + timedelta(hours=9), scores["day0"], outputs=bands(scores["day0"]))
    record(version, T0 + 2 * DAY + timedelta(hours=15), scores["day2"], outputs=bands(scores["day2"]), source="batch")
    return {"version": version, "scores": scores, "ids": ids}


def test_daily_points_match_numpy_and_empty_days_are_zero(client, viewer, churn):
    body = trend(client, viewer, start="2026-03-02", end="2026-03-05")

    day0, day1, day2 = points(body)
    values = np.array(churn["scores"]["day0"])
    assert [p["start"] for p in points(body)] == [
        "2026-03-02T00:00:00+00:00",
        "2026-03-03T00:00:00+00:00",
        "2026-03-04T00:00:00+00:00",
    ]
    assert day0["count"] == 300 and day0["mean"] == pytest.approx(values.mean())
    assert day0["std"] == pytest.approx(values.std()) and day0["min"] == values.min()
    for q in (5, 25, 50, 75, 95):
        exact = np.percentile(values, q, method="inverted_cdf")
        assert day0[f"p{q:02d}"] == pytest.approx(exact, rel=RELATIVE_ACCURACY)
    assert day0["class_shares"] == pytest.approx({"high": (values >= 0.5).mean(), "low": (values < 0.5).mean()})
    assert day1 == day1 | {"count": 0, "mean": None, "p50": None, "class_shares": {}, "outcomes": 0}
    assert day2["count"] == 200


def test_roll_ups_answer_exactly_what_raw_records_answered(client, viewer, churn):
    outcomes_record(slug="churn", items=[OutcomeItem(prediction_id=i, value=1) for i in churn["ids"][:30]])
    raw = trend(client, viewer, start="2026-03-01", end="2026-03-06", granularity="hour")

    rollups_refresh(now=T0 + 10 * DAY)
    rolled = trend(client, viewer, start="2026-03-01", end="2026-03-06", granularity="hour")

    # The same numbers, up to the order PostgreSQL happens to add floats in (last digits).
    assert _to_12_digits(rolled["series"]) == _to_12_digits(raw["series"])


def _to_12_digits(value):
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {key: _to_12_digits(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_12_digits(item) for item in value]
    return value


def test_outcome_coverage_and_realised_error(client, viewer, churn):
    ids, values = churn["ids"][:100], churn["scores"]["day0"][:100]
    rollups_refresh(now=T0 + 10 * DAY)  # half of them before the roll-up...
    outcomes_record(slug="churn", items=[OutcomeItem(prediction_id=i, value=1) for i in ids[:50]])
    outcomes_record(slug="churn", items=[OutcomeItem(prediction_id=i, value=0) for i in ids[50:]])

    day0 = points(trend(client, viewer, start="2026-03-02", end="2026-03-03"))[0]

    errors = np.array(values) - np.array([1] * 50 + [0] * 50)
    assert day0["outcomes"] == 100 and day0["outcome_coverage"] == pytest.approx(100 / 300)
    assert day0["mean_error"] == pytest.approx(errors.mean())
    assert day0["mean_abs_error"] == pytest.approx(np.abs(errors).mean())
    assert day0["rmse"] == pytest.approx(np.sqrt((errors**2).mean()))  # for a classifier: the Brier score's root


def test_days_follow_the_time_zone(client, viewer, make_version, record):
    version = make_version("churn")
    record(version, datetime(2026, 3, 2, 22, 30, tzinfo=UTC), [0.5])  # already 3 March in Tokyo

    utc = points(trend(client, viewer, start="2026-03-02", end="2026-03-04"))
    tokyo = points(trend(client, viewer, start="2026-03-02", end="2026-03-04", tz="Asia/Tokyo"))

    assert [p["count"] for p in utc] == [1, 0]
    assert [p["count"] for p in tokyo] == [0, 1]
    assert tokyo[0]["start"] == "2026-03-02T00:00:00+09:00"


def test_a_daylight_saving_day_has_its_23_hours(client, viewer, make_version, record):
    version = make_version("churn")
    # Europe/Paris moves to summer time on 29 March 2026: that day runs 23:00 UTC (on the 28th)
    # to 22:00 UTC, 23 hours.
    record(version, datetime(2026, 3, 28, 22, 30, tzinfo=UTC), [0.1])  # 28 March, 23:30 CET
    record(version, datetime(2026, 3, 28, 23, 30, tzinfo=UTC), [0.2])  # 29 March, 00:30 CET
    record(version, datetime(2026, 3, 29, 21, 30, tzinfo=UTC), [0.3])  # 29 March, 23:30 CEST
    record(version, datetime(2026, 3, 29, 22, 30, tzinfo=UTC), [0.4])  # 30 March, 00:30 CEST

    body = trend(client, viewer, start="2026-03-29", end="2026-03-31", tz="Europe/Paris")

    assert [p["start"] for p in points(body)] == ["2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"]
    assert [p["count"] for p in points(body)] == [2, 1] and body["exact_buckets"] is True


def test_the_default_span_counts_calendar_days_across_a_clock_change(client, viewer, churn):
    # 30 days before 1 April in Paris is 2 March, although summer time began in between.
    body = trend(client, viewer, end="2026-04-01T00:00", tz="Europe/Paris")

    assert len(points(body)) == 30
    assert points(body)[0]["start"] == "2026-03-02T00:00:00+01:00"


def test_a_half_hour_zone_says_its_buckets_are_approximate(client, viewer, churn):
    body = trend(client, viewer, start="2026-03-02", end="2026-03-05", tz="Asia/Kolkata")

    assert body["exact_buckets"] is False
    assert sum(p["count"] for p in points(body)) == 500


def test_weeks_start_on_monday_and_months_on_the_first(client, viewer, churn):
    weeks = trend(client, viewer, start="2026-03-04", end="2026-03-20", granularity="week")
    months = trend(client, viewer, start="2026-02-15", end="2026-04-02", granularity="month")

    assert [p["start"][:10] for p in points(weeks)] == ["2026-03-02", "2026-03-09", "2026-03-16"]
    assert [p["count"] for p in points(weeks)] == [500, 0, 0]
    assert [p["start"][:10] for p in points(months)] == ["2026-02-01", "2026-03-01", "2026-04-01"]


def test_series_per_version_source_and_segment(client, viewer, churn, make_version, record):
    second = make_version("churn", 2)
    record(second, T0 + timedelta(hours=10), [0.4] * 5, features=[{"contract_type": "monthly"}] * 5)
    params = {"start": "2026-03-02", "end": "2026-03-03"}

    by_version = trend(client, viewer, group_by="version", **params)["series"]
    by_source = trend(client, viewer, group_by="source", **params)["series"]
    only_v2 = trend(client, viewer, version=2, **params)["series"]
    by_segment = trend(client, viewer, group_by="segment", segment="contract_type", **params)

    assert [(s["group"], s["points"][0]["count"]) for s in by_version] == [({"version": 1}, 300), ({"version": 2}, 5)]
    assert [s["group"] for s in by_source] == [{"source": "api"}]
    assert only_v2[0]["points"][0]["count"] == 5
    assert [(s["group"], s["points"][0]["count"]) for s in by_segment["series"]] == [
        ({"contract_type": "annual"}, 300),
        ({"contract_type": "monthly"}, 5),
    ]
    assert by_segment["data"] == "raw records"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"model": "nope"}, "model"),
        ({"granularity": "minute"}, "granularity"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"start": "2026-03-05", "end": "2026-03-01"}, "end"),
        ({"start": "not a date"}, "start"),
        ({"start": "2020-01-01", "end": "2026-01-01", "granularity": "hour"}, "granularity"),
        ({"group_by": "segment"}, "segment"),
        ({"group_by": "segment", "segment": "tenure_months"}, "segment"),  # a number, not a category
        ({"version": 0}, "version"),
        ({"version": 9}, "version"),
    ],
)
def test_bad_parameters_are_a_400(client, viewer, churn, params, field):
    response = client.get(URL, {"model": "churn", **params}, **viewer.headers)

    assert response.status_code == 400
    assert field in response.json()["details"]


def test_a_trend_needs_a_key(client, churn):
    assert client.get(URL, {"model": "churn"}).status_code == 401
