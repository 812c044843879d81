"""Predictions through the API: validated input, business answers, every answer in history."""

from __future__ import annotations

import pytest

from history.models import PredictionRecord
from predictions import services
from predictions.catalog import CATALOG
from tests.accounts.test_access import assert_error

pytestmark = pytest.mark.django_db

CHURN = CATALOG["churn"]


def churn_rows(n: int, seed: int = 7) -> list[dict]:
    frame = CHURN.generate(n, seed=seed)[CHURN.feature_names()]
    return frame.to_dict("records")


def test_one_prediction_is_answered_and_recorded(client, train, predictor):
    train("churn")
    row = churn_rows(1)[0]

    response = client.post(
        "/api/churn",
        {"features": row, "entity_id": "client-42"},
        format="json",
        HTTP_X_CORRELATION_ID="crm-sync-1",
        **predictor.headers,
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "churn" and body["version"] == 1 and body["correlation_id"] == "crm-sync-1"
    assert 0 <= body["prediction"]["churn_probability"] <= 1
    record = PredictionRecord.objects.get(pk=body["prediction_id"])
    assert record.source == "api" and record.entity_id == "client-42"
    assert record.correlation_id == "crm-sync-1" and record.api_key_prefix == predictor.api_key.prefix
    assert record.output == body["prediction"] and record.main_score == body["prediction"]["churn_probability"]
    assert record.features == row


def test_a_batch_answers_like_single_predictions_in_order(client, train, predictor):
    train("churn")
    rows = churn_rows(25)

    batch = client.post(
        "/api/churn/batch",
        {"rows": [{"features": r, "entity_id": f"c{i}"} for i, r in enumerate(rows)]},
        format="json",
        **predictor.headers,
    ).json()
    singles = [client.post("/api/churn", {"features": r}, format="json", **predictor.headers).json() for r in rows[:5]]

    assert batch["count"] == 25 and batch["errors"] == []
    assert [r["index"] for r in batch["results"]] == list(range(25))
    assert [r["prediction"] for r in batch["results"][:5]] == [s["prediction"] for s in singles]
    assert PredictionRecord.objects.filter(source="batch").count() == 25


@pytest.mark.parametrize("slug", sorted(CATALOG))
def test_a_batch_predicted_in_parts_answers_and_records_like_one_part(client, train, predictor, monkeypatch, slug):
    """Large batches are predicted part by part while history takes the parts: nothing moves."""
    train(slug)
    rows = CATALOG[slug].generate(60, seed=5)[CATALOG[slug].feature_names()].to_dict("records")
    body = {"rows": [{"features": r, "entity_id": f"e{i}"} for i, r in enumerate(rows)]}

    whole = client.post(f"/api/{slug}/batch", body, format="json", **predictor.headers).json()
    monkeypatch.setattr(services, "PREDICT_PART_ROWS", 7)
    in_parts = client.post(f"/api/{slug}/batch", body, format="json", **predictor.headers).json()

    assert [r["prediction"] for r in in_parts["results"]] == [r["prediction"] for r in whole["results"]]
    recorded = PredictionRecord.objects.filter(correlation_id=in_parts["correlation_id"]).order_by("pk")
    assert [r.entity_id for r in recorded] == [f"e{i}" for i in range(60)]
    assert [r.output for r in recorded] == [r["prediction"] for r in whole["results"]]


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"tenure_months": "long"}, "tenure_months", "number"),
        ({"tenure_months": -5}, "tenure_months", "at least"),
        ({"favourite_colour": "blue"}, "favourite_colour", "Unknown field"),
        ({"tenure_months": None}, "tenure_months", "required"),
        ({"tenure_months": True}, "tenure_months", "number"),
    ],
)
def test_invalid_features_are_a_400_naming_the_field(client, train, predictor, change, field, fragment):
    train("churn")
    row = {**churn_rows(1)[0], **change}
    if change.get(field, "") is None:
        del row[field]

    response = client.post("/api/churn", {"features": row}, format="json", **predictor.headers)

    body = assert_error(response, 400, "validation_error")
    assert fragment in body["details"]["features"][field]
    assert not PredictionRecord.objects.exists()


@pytest.mark.parametrize(
    ("body_change", "where"),
    [
        ({"features": {"tenure_months": 10**400}}, "features"),
        ({"entity_id": "client\u0000one"}, "body"),
        ({"entity_id": "x" * 121}, "body"),
    ],
)
def test_odd_values_are_a_400_not_a_crash(client, train, predictor, body_change, where):
    train("churn")
    body = {"features": churn_rows(1)[0]}
    if "features" in body_change:
        body["features"] = {**body["features"], **body_change["features"]}
    else:
        body.update(body_change)

    response = client.post("/api/churn", body, format="json", **predictor.headers)

    assert where in assert_error(response, 400, "validation_error")["details"]


def test_a_multipart_body_is_refused_by_the_prediction_endpoints(client, train, predictor):
    train("churn")

    response = client.post("/api/churn", {"features": "x"}, format="multipart", **predictor.headers)

    assert_error(response, 415, "unsupported_media_type")


def test_an_unknown_category_lists_the_allowed_ones(client, train, predictor):
    train("churn")
    category = next(f for f in CHURN.features if f.kind == "category")
    row = {**churn_rows(1)[0], category.name: "no-such-value"}

    body = client.post("/api/churn", {"features": row}, format="json", **predictor.headers).json()

    assert all(choice in body["details"]["features"][category.name] for choice in category.categories)


def test_a_batch_with_a_bad_row_records_nothing_unless_partial(client, train, predictor):
    train("churn")
    rows = [{"features": r} for r in churn_rows(4)]
    rows[2]["features"] = {**rows[2]["features"], "tenure_months": -1}

    strict = client.post("/api/churn/batch", {"rows": rows}, format="json", **predictor.headers)
    partial = client.post("/api/churn/batch", {"rows": rows, "partial": True}, format="json", **predictor.headers)

    assert_error(strict, 400, "validation_error")
    assert list(strict.json()["details"]["rows"]) == ["2"]
    assert partial.status_code == 200
    assert [r["index"] for r in partial.json()["results"]] == [0, 1, 3]
    assert partial.json()["errors"][0]["index"] == 2
    assert PredictionRecord.objects.count() == 3


def test_batch_size_is_capped(client, train, predictor, settings):
    train("churn")
    settings.PREDICTION_BATCH_MAX_ROWS = 3

    response = client.post(
        "/api/churn/batch", {"rows": [{"features": r} for r in churn_rows(4)]}, format="json", **predictor.headers
    )

    body = assert_error(response, 400, "validation_error")
    assert "between 1 and 3 rows" in body["details"]["rows"]


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {"rows": "all"},
        {"rows": [], "partial": False},
        {"rows": [{"features": {}}], "partial": "yes"},
        {"rows": [5]},
        {"rows": [{"features": {}, "extra": 1}]},
        {"rows": [{"features": {}, "entity_id": 7}]},
    ],
)
def test_malformed_batches_are_a_400(client, train, predictor, body):
    train("churn")

    assert_error(client.post("/api/churn/batch", body, format="json", **predictor.headers), 400, "validation_error")


def test_viewers_cannot_predict(client, train, viewer):
    train("churn")

    response = client.post("/api/churn", {"features": churn_rows(1)[0]}, format="json", **viewer.headers)

    assert_error(response, 403, "permission_denied")


def test_a_model_without_a_version_answers_503(client, train, predictor):
    train("churn")  # creates every MLModel row, trains churn only

    response = client.post(
        "/api/pricing", {"features": CATALOG["pricing"].example_row()}, format="json", **predictor.headers
    )

    assert_error(response, 503, "model_unavailable")


@pytest.mark.parametrize("slug", sorted(CATALOG))
def test_every_model_answers_its_documented_example(client, train, predictor, slug):
    train(slug)
    spec = CATALOG[slug]

    response = client.post(f"/api/{slug}/", {"features": spec.example_row()}, format="json", **predictor.headers)

    assert response.status_code == 200, response.content
    assert isinstance(response.json()["prediction"][spec.main_score], float)
