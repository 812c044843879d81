"""Retention: old raw records go in small batches, roll-ups stay, so trends do not change."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from accounts.roles import Role
from history.models import HourlyRollup, MaintenanceState, Outcome, PredictionRecord
from history.services import OutcomeItem, outcomes_record, retention_apply
from history.tasks import apply_retention
from tests.live import celery_worker, service_env

URL = "/api/history/retention"
DAY = timedelta(days=1)


@pytest.fixture
def year_of_history(make_version, record):
    """Churn records every 20 days over the last 395 days, 150 a time, with some outcomes."""
    version = make_version("churn")
    now = timezone.now()
    ids = []
    for age in range(395, 0, -20):  # off the retention ages the tests use
        at = (now - age * DAY).replace(minute=7)
        ids += record(version, at, [round(0.1 + age / 1000, 4)] * 150, outputs=[{"risk_band": "low"}] * 150)
    outcomes_record(slug="churn", items=[OutcomeItem(prediction_id=i, value=1) for i in ids[::10]])
    return {"now": now, "ids": ids}


def year_trend(client, caller, now: datetime) -> list[dict]:
    params = {"model": "churn", "granularity": "month", "start": (now - 420 * DAY).isoformat(), "end": now.isoformat()}
    response = client.get("/api/history/trends", params, **caller.headers)
    assert response.status_code == 200
    return response.json()["series"]


@pytest.mark.django_db
def test_retention_deletes_old_records_in_batches_and_trends_stay_the_same(client, viewer, year_of_history, settings):
    settings.HISTORY_RETENTION_DAYS = 90
    settings.HISTORY_RETENTION_BATCH_ROWS = 500
    settings.HISTORY_RETENTION_PAUSE_MS = 0
    now = year_of_history["now"]
    before = year_trend(client, viewer, now)

    report = retention_apply(now=now)

    cutoff = now - 90 * DAY
    assert report.deleted_records == 16 * 150 and report.batches >= 5
    assert not PredictionRecord.objects.filter(created_at__lt=cutoff).exists()
    assert PredictionRecord.objects.count() == 4 * 150
    assert not Outcome.objects.filter(prediction__created_at__lt=cutoff).exists()
    assert Outcome.objects.count() == 4 * 15
    assert HourlyRollup.objects.count() == 20  # every hour kept, deleted ones included
    assert year_trend(client, viewer, now) == before


@pytest.mark.django_db
def test_a_second_run_while_one_holds_the_claim_does_nothing(year_of_history, settings):
    settings.HISTORY_RETENTION_DAYS = 30
    MaintenanceState.objects.update_or_create(
        pk=1, defaults={"retention_claimed_until": timezone.now() + timedelta(minutes=5)}
    )

    report = retention_apply()

    assert report.deleted_records == 0 and "in progress" in report.skipped
    assert PredictionRecord.objects.count() == 20 * 150


@pytest.mark.django_db
def test_retention_off_keeps_everything(client, make_caller, year_of_history):
    admin = make_caller(Role.ADMIN, username="ada-admin")
    client.put(URL, {"max_age_days": None}, format="json", **admin.headers)

    report = retention_apply()

    assert report.deleted_records == 0 and "forever" in report.skipped
    assert PredictionRecord.objects.count() == 20 * 150


@pytest.mark.django_db
def test_viewers_read_the_policy_and_only_admins_change_it(client, make_caller, settings):
    settings.HISTORY_RETENTION_DAYS = 120
    viewer, operator = make_caller(Role.VIEWER, username="vic-viewer"), make_caller(Role.OPERATOR, username="oli-op")
    admin = make_caller(Role.ADMIN, username="ada-admin")

    default = client.get(URL, **viewer.headers).json()
    refused = [client.put(URL, {"max_age_days": 30}, format="json", **who.headers) for who in (viewer, operator)]
    changed = client.put(URL, {"max_age_days": 30}, format="json", **admin.headers)
    after = client.get(URL, **viewer.headers).json()

    assert default["max_age_days"] == 120 and default["stored"] is False
    assert [r.status_code for r in refused] == [403, 403]
    assert changed.status_code == 200
    assert after["max_age_days"] == 30 and after["stored"] is True and after["updated_by"] == "ada-admin"
    cutoff = datetime.fromisoformat(after["cutoff"].replace("Z", "+00:00"))
    assert abs(cutoff - (timezone.now() - 30 * DAY)) < timedelta(minutes=1)


@pytest.mark.django_db
@pytest.mark.parametrize("value", [0, -3, 10**6, "thirty", 1.5])
def test_impossible_ages_are_a_400(client, make_caller, value):
    admin = make_caller(Role.ADMIN, username="ada-admin")

    response = client.put(URL, {"max_age_days": value}, format="json", **admin.headers)

    assert response.status_code == 400 and "max_age_days" in response.json()["details"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_periodic_task_runs_on_a_real_worker(year_of_history, settings):
    settings.HISTORY_RETENTION_DAYS = 100  # read by this process only: the worker has its own settings

    with celery_worker(service_env(HISTORY_RETENTION_DAYS="100", HISTORY_RETENTION_BATCH_ROWS="1000")):
        report = apply_retention.delay().get(timeout=120)

    cutoff = datetime.fromisoformat(report["cutoff"])
    assert report["deleted_records"] == 15 * 150
    assert abs(cutoff - (timezone.now() - 100 * DAY)) < timedelta(minutes=5)
    assert PredictionRecord.objects.order_by("created_at").first().created_at >= cutoff
    assert MaintenanceState.objects.get().retention_last_deleted == 15 * 150


@pytest.mark.django_db
def test_retention_never_deletes_records_whose_hour_is_not_rolled_up(make_version, record, settings):
    settings.HISTORY_RETENTION_DAYS = 1
    settings.HISTORY_ROLLUP_DELAY_SECONDS = 10 * 86400  # hours close for roll-up only after ten days
    record(make_version("churn"), timezone.now() - 3 * DAY, [0.5] * 10)

    report = retention_apply()

    assert report.deleted_records == 0 and PredictionRecord.objects.count() == 10
    assert not HourlyRollup.objects.exists()
