"""Web processes hand freed memory back after large requests, once the response is sent (config/memory.py)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from wsgiref.util import setup_testing_defaults

import pytest
from django.core.signals import request_finished
from django.core.wsgi import get_wsgi_application

from config import memory
from predictions.catalog import CATALOG
from tests.live import ROOT, service_env


@pytest.fixture
def trims(monkeypatch) -> list[int]:
    """Records each malloc_trim the web process makes, and still makes it."""
    made: list[int] = []
    real = memory._MALLOC_TRIM
    assert real is not None, "glibc's malloc_trim is available on Linux"

    def recording(pad: int) -> int:
        made.append(pad)
        return real(pad)

    monkeypatch.setattr(memory, "_MALLOC_TRIM", recording)
    return made


def call(application, path: str, body: bytes, key: str) -> tuple[list[str], object]:
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(
        REQUEST_METHOD="POST",
        PATH_INFO=path,
        HTTP_HOST="testserver",
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH=str(len(body)),
        HTTP_X_API_KEY=key,
        **{"wsgi.input": io.BytesIO(body)},
    )
    status: list[str] = []
    response = application(environ, lambda line, headers, exc_info=None: status.append(line))
    return status, response


@pytest.mark.django_db(transaction=True)
def test_a_large_batch_is_answered_whole_and_memory_released_only_after_it_is_sent(train, predictor, trims):
    train("churn")
    application = memory.ReleaseMemoryAfterLargeRequests(get_wsgi_application(), min_body_bytes=100_000)
    rows = CATALOG["churn"].generate(1_000, seed=3)[CATALOG["churn"].feature_names()].to_dict("records")
    body = json.dumps({"rows": [{"features": row} for row in rows]}).encode()
    assert len(body) >= 100_000

    trims_when_django_finished: list[int] = []
    record = lambda **kwargs: trims_when_django_finished.append(len(trims))  # noqa: E731
    request_finished.connect(record)
    try:
        status, response = call(application, "/api/churn/batch", body, predictor.raw_key)
        answer = json.loads(b"".join(response))
        assert trims == []  # not while the answer is still being sent
        response.close()
    finally:
        request_finished.disconnect(record)

    assert status == ["200 OK"] and answer["count"] == 1_000
    assert trims_when_django_finished == [0]  # Django's response closed first, then the trim
    assert trims == [0]


@pytest.mark.django_db(transaction=True)
def test_a_large_declared_body_that_is_never_read_releases_nothing(trims):
    application = memory.ReleaseMemoryAfterLargeRequests(get_wsgi_application(), min_body_bytes=100_000)

    status, response = call(application, "/api/churn/batch", b"x" * 200_000, "not-a-key")
    b"".join(response)
    response.close()

    assert status[0].startswith("401") or status[0].startswith("403")
    assert trims == []  # refused before its body was read: no trim bought with a header


@pytest.mark.django_db(transaction=True)
def test_a_single_prediction_is_passed_through_untouched(train, predictor, trims):
    train("churn")
    django_application = get_wsgi_application()
    application = memory.ReleaseMemoryAfterLargeRequests(django_application, min_body_bytes=100_000)
    body = json.dumps({"features": CATALOG["churn"].example_row()}).encode()

    status, response = call(application, "/api/churn", body, predictor.raw_key)
    response.close()

    # Django's own response object, not a wrapper: nothing added to the common path.
    assert status == ["200 OK"] and json.loads(response.content)["prediction"]
    assert trims == []


def test_the_web_server_application_releases_after_bodies_of_a_megabyte(db):
    probe = (
        "import config.wsgi as w; from django.core.handlers.wsgi import WSGIHandler as H;"
        "print(type(w.application).__name__, w.application.min_body_bytes, isinstance(w.application.application, H))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=service_env(), capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "ReleaseMemoryAfterLargeRequests 1000000 True"
