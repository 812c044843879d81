"""Personas and runs for the scheduling tests.

Owner and teammate are operators, the outsider a viewer with no runs, the admin sees every run;
``owner_viewer_key`` is a read-only key the owner made for a dashboard.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accounts.roles import Role
from accounts.services import api_key_create
from predictions.catalog import CATALOG
from predictions.services import mlmodels_sync_catalog
from scheduling.models import ScheduledRun
from scheduling.services import scheduled_run_create
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
