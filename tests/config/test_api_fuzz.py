"""Requests generated from the OpenAPI document, for every operation: none is answered 5xx.

schemathesis reads the document the service publishes and generates requests for each
operation, valid and invalid (wrong types, out-of-range numbers, odd text, unusual time
offsets), and calls the WSGI application in-process with an admin key. Every operation must
answer them with a 2xx, 3xx or 4xx. Derandomised: the same requests on every run, so a
failure reproduces; the examples per operation are few, to keep the suite fast.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from accounts.roles import Role, Tier
from predictions.catalog import CATALOG

pytestmark = pytest.mark.django_db

_PREDICTION_PATH = re.compile(r"/api/(?P<slug>[a-z-]+)(/batch)?")


# Django's own WSGI handler, not config.wsgi: importing that would freeze the garbage
# collector for the whole test session (config/gc.py). Read once, at collection: generating
# the document needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler())


@pytest.fixture(autouse=True)
def _connection_kept_across_requests():
    """As Django's test client does: a request must not close the connection that holds the
    test's transaction (Django closes connections when a request ends)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _media_in_a_scratch_folder(settings, tmp_path):
    """Bulk jobs store their uploaded input: here, not in the development MEDIA_ROOT."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def fuzzing_admin(make_caller):
    return make_caller(Role.ADMIN, tier=Tier.UNLIMITED, username="fuzzing-admin")


@pytest.fixture
def active_model_for(train):
    """Trains the model a prediction or a bulk job asks for, once per test: without an active
    version they answer 503 (model unavailable), which is right but would hide what lies
    behind it."""
    trained: set[str] = set()

    def ensure(case) -> None:
        match = _PREDICTION_PATH.fullmatch(case.operation.path)
        slug = match["slug"] if match else None
        if case.operation.path == "/api/bulk-predictions" and isinstance(case.body, dict):
            slug = case.body.get("model")
        if isinstance(slug, str) and slug in CATALOG and slug not in trained:
            train(slug)
            trained.add(slug)

    return ensure


# The worker check waits up to its timeout for a Celery worker, which this test does not start.
@schema.exclude(path="/api/health/worker").parametrize()
@hypothesis_settings(max_examples=12, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_is_answered_with_a_server_error(case, fuzzing_admin, active_model_for):
    active_model_for(case)

    case.call_and_validate(headers={"X-API-Key": fuzzing_admin.raw_key}, checks=[not_a_server_error])
