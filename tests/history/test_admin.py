"""The admin: records read-only with filters; the retention age changed by admins only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission

from accounts.roles import Role
from history.models import PredictionRecord, RetentionPolicy
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_records_list_filters_and_stays_read_only(admin_client, make_version, record):
    ids = record(make_version("churn"), datetime(2026, 3, 1, tzinfo=UTC), [0.4, 0.6], source="batch")

    listing = admin_client.get("/admin/history/predictionrecord/", {"source__exact": "batch", "made": "30d"})
    everything = admin_client.get("/admin/history/predictionrecord/", {"source__exact": "batch"})
    change = admin_client.post(f"/admin/history/predictionrecord/{ids[0]}/change/", {"main_score": 1})

    assert listing.status_code == 200 and "0 prediction records" in listing.content.decode()  # March is long ago
    assert everything.status_code == 200 and str(ids[1]) in everything.content.decode()
    assert change.status_code == 403 and PredictionRecord.objects.get(pk=ids[0]).main_score == 0.4


def test_only_admins_change_the_retention_age(client, admin_client):
    operator = UserFactory(username="oli-operator", role=Role.OPERATOR, is_staff=True)
    operator.user_permissions.set(Permission.objects.filter(codename__endswith="retentionpolicy"))
    client.force_login(operator)

    refused = client.post("/admin/history/retentionpolicy/add/", {"max_age_days": 10})
    accepted = admin_client.post("/admin/history/retentionpolicy/add/", {"max_age_days": 45})

    assert refused.status_code == 403
    assert accepted.status_code == 302
    policy = RetentionPolicy.objects.get()
    assert policy.max_age_days == 45 and policy.updated_by == "admin"
