"""Versions: training, artifacts verified before loading, promotion, rollback, health."""

from __future__ import annotations

import time

import pytest
from django.db import IntegrityError, transaction

from predictions.artifacts import artifact_path
from predictions.catalog import CATALOG
from predictions.models import ModelVersion, VersionStatus
from predictions.serving import REFRESH_SECONDS
from tests.accounts.test_access import assert_error

pytestmark = pytest.mark.django_db


def predict_version(client, caller, slug: str = "churn") -> int:
    response = client.post(f"/api/{slug}", {"features": CATALOG[slug].example_row()}, format="json", **caller.headers)
    assert response.status_code == 200, response.content
    return response.json()["version"]


def wait_for_refresh() -> None:
    time.sleep(REFRESH_SECONDS + 0.05)


def test_training_records_how_the_version_was_made(train):
    version = train("churn", rows=3000, seed=3)

    assert version.number == 1 and version.status == VersionStatus.ACTIVE
    assert len(version.sha256) == 64 and version.artifact_bytes > 0
    assert version.metrics["roc_auc"] > 0.7
    assert version.params == {"source": "generator", "rows": 3000, "seed": 3, "drift": 0.0}
    assert version.training_rows < 3000  # the holdout is kept apart
    profile = version.reference_profile
    assert set(profile["features"]) == set(CATALOG["churn"].feature_names())
    assert abs(sum(profile["main_score"]["bin_shares"]) - 1) < 1e-9


def test_later_versions_wait_as_candidates(train):
    train("churn")
    second = train("churn", seed=1)

    assert second.number == 2 and second.status == VersionStatus.CANDIDATE


def test_the_database_refuses_a_second_active_version(train):
    train("churn")
    second = train("churn", seed=1)

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second.pk).update(status=VersionStatus.ACTIVE)


def test_promote_and_rollback_change_what_is_served(client, train, predictor, admin):
    train("churn")
    train("churn", seed=1)
    assert predict_version(client, predictor) == 1

    promoted = client.post("/api/models/churn/promote", {"version": 2}, format="json", **admin.headers)
    wait_for_refresh()
    served_after_promotion = predict_version(client, predictor)
    rolled_back = client.post("/api/models/churn/rollback", **admin.headers)
    wait_for_refresh()

    assert promoted.status_code == 200 and promoted.json()["status"] == "active"
    assert served_after_promotion == 2
    assert rolled_back.json()["number"] == 1
    assert predict_version(client, predictor) == 1
    statuses = dict(ModelVersion.objects.values_list("number", "status"))
    assert statuses == {1: "active", 2: "archived"}


def test_promotion_errors(client, train, admin, predictor):
    train("churn")

    assert_error(client.post("/api/models/churn/promote", {"version": 1}, format="json", **admin.headers), 409)
    assert_error(client.post("/api/models/churn/promote", {"version": 9}, format="json", **admin.headers), 404)
    assert_error(client.post("/api/models/churn/rollback", **admin.headers), 409, "conflict")
    assert_error(client.post("/api/models/churn/promote", {"version": 1}, format="json", **predictor.headers), 403)
    assert_error(client.post("/api/models/nope/promote", {"version": 1}, format="json", **admin.headers), 404)


def damage_artifact(version, how: str) -> None:
    path = artifact_path(version.artifact_path)
    if how == "tamper":
        path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    else:
        path.unlink()


DAMAGE_MESSAGES = {"tamper": "does not match its recorded sha256", "delete": "is missing"}


@pytest.mark.parametrize("damage", ["tamper", "delete"])
def test_a_damaged_artifact_is_refused_and_the_previous_version_keeps_serving(client, train, predictor, admin, damage):
    train("churn")
    second = train("churn", seed=1)
    assert predict_version(client, predictor) == 1

    promoted = client.post("/api/models/churn/promote", {"version": 2}, format="json", **admin.headers)
    damage_artifact(second, damage)  # after promotion, before this process reloads
    wait_for_refresh()
    served = predict_version(client, predictor)
    health = client.get("/api/models/churn/health", **predictor.headers).json()

    assert promoted.status_code == 200 and served == 1
    assert health["status"] == "red" and health["artifact_verified"] is False
    assert DAMAGE_MESSAGES[damage] in health["artifact_problem"]
    assert DAMAGE_MESSAGES[damage] in health["serving_error"]


def test_a_damaged_version_cannot_be_promoted(client, train, predictor, admin):
    train("churn")
    second = train("churn", seed=1)
    damage_artifact(second, "tamper")

    response = client.post("/api/models/churn/promote", {"version": 2}, format="json", **admin.headers)

    body = assert_error(response, 409, "conflict")
    assert "cannot be promoted" in body["message"] and DAMAGE_MESSAGES["tamper"] in body["message"]
    assert predict_version(client, predictor) == 1


def test_rolling_back_from_a_refused_version_turns_health_green_again(client, train, predictor, admin):
    train("churn")
    second = train("churn", seed=1)
    predict_version(client, predictor)
    client.post("/api/models/churn/promote", {"version": 2}, format="json", **admin.headers)
    damage_artifact(second, "delete")
    wait_for_refresh()
    predict_version(client, predictor)

    client.post("/api/models/churn/rollback", **admin.headers)
    wait_for_refresh()
    health = client.get("/api/models/churn/health", **predictor.headers).json()

    assert predict_version(client, predictor) == 1
    assert health["status"] == "green" and health["serving_error"] is None


def test_health_is_green_for_a_served_model(client, train, predictor):
    train("churn")
    predict_version(client, predictor)

    health = client.get("/api/models/churn/health", **predictor.headers).json()

    assert health["status"] == "green" and health["artifact_verified"] is True
    assert health["loaded_in_this_process"] == 1
    assert health["last_prediction_at"] is not None
    assert health["recent_requests"] >= 1 and health["recent_error_rate"] == 0


def test_model_list_info_and_versions(client, train, viewer):
    train("churn")
    train("churn", seed=1)

    listing = client.get("/api/models", **viewer.headers).json()
    info = client.get("/api/models/churn/info", **viewer.headers).json()
    versions = client.get("/api/models/churn/versions", **viewer.headers).json()

    assert {m["slug"] for m in listing} == set(CATALOG)
    churn = next(m for m in listing if m["slug"] == "churn")
    assert churn["active_version"]["number"] == 1 and "roc_auc" in churn["active_version"]["metrics"]
    tenure = next(f for f in info["schema"]["features"] if f["name"] == "tenure_months")
    assert tenure["minimum"] == 1 and tenure["unit"] == "months"
    assert info["schema"]["example_request"]["features"] == CATALOG["churn"].example_row()
    assert [v["number"] for v in versions["results"]] == [2, 1]
