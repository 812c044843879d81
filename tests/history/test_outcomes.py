"""Outcomes: matched by id or by entity and window, idempotent, type-checked, reported back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from history.models import HourlyRollup, Outcome
from history.services import rollups_refresh

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "/api/history/outcomes"


@pytest.fixture
def churn(make_version, record):
    version = make_version("churn")
    ids = record(version, T0, [0.8, 0.3], entity_ids=["client-1", "client-2"])
    later = record(version, T0 + timedelta(days=2), [0.6], entity_ids=["client-1"])
    return ids + later


def post(client, caller, model: str, outcomes: list[dict]):
    return client.post(URL, {"model": model, "outcomes": outcomes}, format="json", **caller.headers)


def test_outcome_by_prediction_id_is_recorded_with_its_error(client, predictor, churn):
    response = post(client, predictor, "churn", [{"prediction_id": churn[0], "value": 1}])

    assert response.status_code == 200
    assert response.json() | {"conflicts": [], "unmatched": []} == {
        "model": "churn",
        "received": 1,
        "recorded": 1,
        "unchanged": 0,
        "conflicts": [],
        "unmatched": [],
    }
    outcome = Outcome.objects.get(prediction_id=churn[0])
    assert outcome.value == 1.0 and outcome.error == pytest.approx(0.8 - 1.0)


def test_outcome_by_entity_matches_only_predictions_in_the_window(client, predictor, churn):
    window = {"window_start": T0.isoformat(), "window_end": (T0 + timedelta(days=1)).isoformat()}

    response = post(client, predictor, "churn", [{"entity_id": "client-1", "value": False, **window}])

    assert response.json()["recorded"] == 1
    assert list(Outcome.objects.values_list("prediction_id", "value")) == [(churn[0], 0.0)]


def test_sending_the_same_outcomes_twice_changes_nothing(client, predictor, churn):
    outcomes = [{"prediction_id": churn[0], "value": 1}, {"prediction_id": churn[1], "value": 0}]
    post(client, predictor, "churn", outcomes)
    before = list(Outcome.objects.order_by("pk").values())

    again = post(client, predictor, "churn", outcomes).json()

    assert again["recorded"] == 0 and again["unchanged"] == 2 and again["conflicts"] == []
    assert list(Outcome.objects.order_by("pk").values()) == before


def test_a_different_value_for_a_recorded_outcome_is_a_reported_conflict(client, predictor, churn):
    post(client, predictor, "churn", [{"prediction_id": churn[0], "value": 1}])

    answer = post(client, predictor, "churn", [{"prediction_id": churn[0], "value": 0}]).json()

    assert answer["conflicts"] == [{"index": 0, "prediction_id": churn[0], "recorded_value": 1.0, "value": 0.0}]
    assert Outcome.objects.get(prediction_id=churn[0]).value == 1.0


def test_unmatched_items_are_reported_and_the_rest_recorded(client, predictor, churn, make_version, record):
    pricing_id = record(make_version("pricing"), T0, [1200.0])[0]
    window = {"window_start": T0.isoformat(), "window_end": (T0 + timedelta(hours=1)).isoformat()}

    answer = post(
        client,
        predictor,
        "churn",
        [
            {"prediction_id": churn[1], "value": 0},
            {"prediction_id": pricing_id, "value": 1},  # another model's prediction
            {"prediction_id": 10**15, "value": 1},
            {"entity_id": "client-9", "value": 1, **window},
        ],
    ).json()

    assert answer["recorded"] == 1
    assert [item["index"] for item in answer["unmatched"]] == [1, 2, 3]
    assert "entity" in answer["unmatched"][2]["reason"]


@pytest.mark.parametrize(
    ("model", "value"),
    [("churn", 0.7), ("churn", 2), ("churn", "yes"), ("profitability", True), ("profitability", "12.5")],
)
def test_a_value_of_the_wrong_type_rejects_the_whole_call(client, predictor, make_version, record, model, value):
    prediction_id = record(make_version(model), T0, [10.0])[0]
    good = 1 if model == "churn" else 12.5

    response = post(
        client,
        predictor,
        model,
        [{"prediction_id": prediction_id, "value": good}, {"prediction_id": prediction_id, "value": value}],
    )

    assert response.status_code == 400
    assert list(response.json()["details"]["outcomes"]) == ["1"]
    assert not Outcome.objects.exists()


def test_regressors_take_numbers_and_pricing_takes_labels_without_error(client, predictor, make_version, record):
    margin_id = record(make_version("profitability"), T0, [18.5])[0]
    price_id = record(make_version("pricing"), T0, [1500.0])[0]

    post(client, predictor, "profitability", [{"prediction_id": margin_id, "value": 21}])
    post(client, predictor, "pricing", [{"prediction_id": price_id, "value": 1}])

    assert Outcome.objects.get(pk=margin_id).error == pytest.approx(18.5 - 21)
    assert Outcome.objects.get(pk=price_id).error is None  # a price minus won/lost means nothing


@pytest.mark.parametrize(
    "outcomes",
    [
        [],
        "not a list",
        [{"value": 1}],  # neither an id nor an entity
        [{"prediction_id": 1, "entity_id": "x", "value": 1}],
        [{"entity_id": "client-1", "value": 1}],  # no window
        [{"prediction_id": 1}],
        [{"prediction_id": "1", "value": 1}],
        [{"prediction_id": 1, "value": 1, "colour": "red"}],
        [{"entity_id": "client-1", "value": 1, "window_start": "soon", "window_end": "later"}],
    ],
)
def test_malformed_items_are_a_400(client, predictor, churn, outcomes):
    response = client.post(URL, {"model": "churn", "outcomes": outcomes}, format="json", **predictor.headers)

    assert response.status_code == 400 and response.json()["error"] == "validation_error"


def test_a_model_that_is_not_a_slug_is_a_400(client, predictor, churn):
    response = client.post(URL, {"model": {}, "outcomes": []}, format="json", **predictor.headers)

    assert response.status_code == 400 and "model" in response.json()["details"]


def test_times_with_offsets_beyond_postgresqls_are_matched_at_the_same_instant(client, predictor, churn):
    # +20:00 is valid ISO 8601 and valid for Python, but PostgreSQL refuses offsets past 15:59.
    far_east = timezone(timedelta(hours=20))
    window = {
        "window_start": T0.astimezone(far_east).isoformat(),
        "window_end": (T0 + timedelta(days=1)).astimezone(far_east).isoformat(),
        "observed_at": (T0 + timedelta(days=3)).astimezone(far_east).isoformat(),
    }

    response = post(client, predictor, "churn", [{"entity_id": "client-1", "value": 1, **window}])

    assert response.status_code == 200 and response.json()["recorded"] == 1
    assert Outcome.objects.get().observed_at == T0 + timedelta(days=3)


@pytest.mark.parametrize("observed_at", ["0001-01-01T00:00:00+20:00", "9999-12-31T23:00:00+00:00", "1969-12-31T23:59"])
def test_a_time_outside_the_service_range_is_a_400(client, predictor, churn, observed_at):
    # Year 1 at +20:00 is year 0 in UTC; 9999-12-31T23:00Z would be year 10000 in Tokyo.
    outcome = {"prediction_id": churn[0], "value": 1, "observed_at": observed_at}

    response = post(client, predictor, "churn", [outcome])

    assert response.status_code == 400 and "observed_at" in str(response.json()["details"])
    assert not Outcome.objects.exists()


def test_more_than_the_maximum_per_call_is_a_400(client, predictor, churn, settings):
    settings.HISTORY_OUTCOMES_MAX_ITEMS = 2

    response = post(client, predictor, "churn", [{"prediction_id": churn[0], "value": 1}] * 3)

    assert response.status_code == 400 and "file" in str(response.json()["details"])


def test_viewers_cannot_send_outcomes(client, viewer, churn):
    response = post(client, viewer, "churn", [{"prediction_id": churn[0], "value": 1}])

    assert response.status_code == 403 and not Outcome.objects.exists()


def test_outcomes_for_rolled_up_hours_reach_the_roll_up(client, predictor, churn):
    rollups_refresh(now=T0 + timedelta(days=5))

    post(client, predictor, "churn", [{"prediction_id": churn[0], "value": 1}, {"prediction_id": churn[1], "value": 1}])

    row = HourlyRollup.objects.get(hour=T0)
    assert row.outcome_count == 2 and row.error_count == 2
    assert row.error_sum == pytest.approx((0.8 - 1) + (0.3 - 1))
    assert row.error_sq_sum == pytest.approx(0.2**2 + 0.7**2)
