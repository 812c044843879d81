"""Operators promote and roll back versions from the Django admin."""

from __future__ import annotations

import pytest

from predictions.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_promote_and_rollback_actions(admin_client, train):
    train("churn")
    second = train("churn", seed=1)

    promoted = admin_client.post(
        "/admin/predictions/modelversion/", {"action": "promote", "_selected_action": [second.pk]}, follow=True
    )
    after_promotion = dict(ModelVersion.objects.values_list("number", "status"))
    rolled_back = admin_client.post(
        "/admin/predictions/mlmodel/", {"action": "rollback", "_selected_action": [second.model_id]}, follow=True
    )

    assert "churn v2 is now active" in promoted.content.decode().lower()
    assert after_promotion == {1: "archived", 2: "active"}
    assert "churn now serves v1" in rolled_back.content.decode().lower()
    assert dict(ModelVersion.objects.values_list("number", "status")) == {1: "active", 2: "archived"}


def test_model_page_lists_versions_with_their_metrics(admin_client, train):
    version = train("churn")

    page = admin_client.get(f"/admin/predictions/mlmodel/{version.model_id}/change/").content.decode()

    assert "roc_auc 0." in page and "created by" in page.lower()
