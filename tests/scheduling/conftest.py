"""Personas and runs for the scheduling tests.

Owner and teammate are operators, the outsider a viewer with no runs, the admin sees every run;
``owner_viewer_key`` is a read-only key the owner made for a dashboard.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_celery_beat import schedulers
from django_celery_beat.models import PeriodicTask

from accounts.roles import Role
from accounts.services import api_key_create
from config.celery import app
from predictions.catalog import CATALOG
from predictions.services import mlmodels_sync_catalog
from scheduling import beat
from scheduling.models import ScheduledRun
from scheduling.services import FIRE_TASK, scheduled_run_create
from scheduling.tasks import fire_runs, resend_overdue
from tests.conftest import Caller

# A Monday in June, well away from any DST change in the zones used here.
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def model_rows(slug: str, n: int = 3, seed: int = 7) -> list[dict]:
    spec = CATALOG[slug]
    return spec.generate(n, seed=seed)[spec.feature_names()].to_dict("records")


def churn_rows(n: int = 3, seed: int = 7) -> list[dict]:
    return model_rows("churn", n, seed)


@pytest.fixture
def owner(make_caller) -> Caller:
    return make_caller(Role.OPERATOR, username="olivia-owner")


@pytest.fixture
def teammate(make_caller) -> Caller:
    return make_caller(Role.OPERATOR, username="theo-teammate")


@pytest.fixture
def outsider(make_caller) -> Caller:
    return make_caller(Role.VIEWER, username="otto-outsider")


@pytest.fixture
def owner_viewer_key(owner) -> Caller:
    api_key, raw_key = api_key_create(user=owner.api_key.user, name="dashboard", role=Role.VIEWER)
    return Caller(api_key=api_key, raw_key=raw_key)


@pytest.fixture
def make_run(db):
    """A run created through the service (at ``now``, default T0), for any owner."""

    def make(owner: Caller, **fields) -> ScheduledRun:
        fields.setdefault("model_slug", "churn")
        fields.setdefault("cron", "*/5 * * * *")
        fields.setdefault("parameters", {"source": "rows", "rows": churn_rows(3)})
        fields.setdefault("now", T0)
        return scheduled_run_create(owner=owner.api_key.user, **fields)

    return make


@pytest.fixture
def catalog(db):
    """The models' rows, without training: enough to create runs (not to execute them)."""
    mlmodels_sync_catalog()


@pytest.fixture
def churn(train):
    """An active churn version, so that executions can score."""
    return train("churn")


@pytest.fixture
def make_scheduler(monkeypatch):
    """Beat's scheduler, in process: ``sent`` lists the entry names it sent, ``messages`` the run ids
    of each ``fire_runs`` message; nothing reaches the broker."""
    # Beat closes stale connections between loops; here that would be the test's own connection.
    monkeypatch.setattr(schedulers, "close_old_connections", lambda: None)
    monkeypatch.setattr(beat, "close_old_connections", lambda: None)
    made_by_producer, made_all = {}, []

    def send_fire_runs(args, producer=None, **options):
        made = made_by_producer[id(producer)]
        made.messages.append(list(args[0]))
        made.sent.extend(f"scheduled-run-{run_id}" for run_id in args[0])

    monkeypatch.setattr(fire_runs, "apply_async", send_fire_runs)
    monkeypatch.setattr(resend_overdue, "apply_async", lambda *args, **options: None)  # a takeover's request

    def make() -> beat.DatabaseScheduler:
        made = beat.DatabaseScheduler(app=app)
        made.sent, made.messages = [], []
        made.__dict__["producer"] = producer = object()  # stands in for the broker connection
        made_by_producer[id(producer)] = made
        made.apply_async = lambda entry, producer=None, advance=True, **kwargs: made.sent.append(entry.name)
        made_all.append(made)
        return made

    yield make
    for made in made_all:
        made._finalize.cancel()  # no write-back at interpreter exit, after the test database is gone


@pytest.fixture
def scheduler(make_scheduler) -> beat.DatabaseScheduler:
    return make_scheduler()


def make_due(runs: int, make_run, owner) -> list[int]:
    """Runs due now, and not again for a year: a minute boundary during the test changes nothing."""
    ids = [make_run(owner, cron="@yearly", now=timezone.now()).pk for _ in range(runs)]
    PeriodicTask.objects.filter(task=FIRE_TASK).update(last_run_at=timezone.now() - timedelta(days=400))
    return ids


def burst(scheduler, limit: int = 200) -> None:
    """Tick until nothing more is due now (at most ``limit`` ticks)."""
    for _ in range(limit):
        if scheduler.tick() > 0:
            break
