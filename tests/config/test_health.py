"""Liveness, readiness with each dependency stopped, and the worker check on a real worker."""

from __future__ import annotations

import pytest

from accounts.roles import Role
from tests.accounts.test_access import assert_error
from tests.live import celery_worker, live_server, service_env

# A port nothing listens on: the dependency is down.
DEAD = "127.0.0.1:9"


def test_liveness_needs_nothing(client):
    response = client.get("/api/health")

    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readiness_checks_database_broker_cache_and_artifacts(client):
    response = client.get("/api/health/ready/")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "cache": "ok", "artifacts": "ok"}


@pytest.mark.django_db
def test_readiness_fails_when_an_active_artifact_is_tampered(client, train):
    from predictions.artifacts import artifact_path

    version = train("churn")
    artifact_path(version.artifact_path).write_bytes(b"not the trained model")

    body = assert_error(client.get("/api/health/ready"), 503, "not_ready")

    assert "artifacts refused for churn" in body["message"]
    assert "does not match its recorded sha256" in body["details"]["artifacts"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("variable", "url", "part"),
    [
        ("DATABASE_URL", f"postgres://postgres@{DEAD}/modelops", "database"),
        ("CELERY_BROKER_URL", f"redis://{DEAD}/0", "broker"),
        ("CACHE_URL", f"redis://{DEAD}/0", "cache"),
    ],
)
def test_readiness_names_the_stopped_dependency(variable, url, part):
    env = service_env(**{variable: url, "CELERY_RESULT_BACKEND": f"file:///tmp/modelops-results-{part}"})

    with live_server(env) as server:
        answer = server.call("GET", "/api/health/ready", {"X-Correlation-ID": f"probe-{part}"})
        logs = server.log_lines()

    assert answer.status == 503
    assert answer.body["error"] == "not_ready"
    assert list(answer.body["details"]) == [part]
    assert f"{part} unreachable" in answer.body["message"]
    request_line = next(line for line in logs if line.get("path") == "/api/health/ready")
    assert request_line["correlation_id"] == f"probe-{part}"
    assert request_line["status"] == 503 and request_line["level"] == "INFO"


@pytest.mark.integration
@pytest.mark.django_db
def test_a_real_worker_runs_a_task_with_the_requests_correlation_id(client, make_caller):
    operator = make_caller(Role.OPERATOR)

    with celery_worker(service_env()):
        response = client.post(
            "/api/health/worker",
            {"queue": "predictions", "timeout": 30},
            format="json",
            HTTP_X_CORRELATION_ID="trace-worker-check-1",
            **operator.headers,
        )

    assert response.status_code == 200, response.content
    assert response.json()["correlation_id_seen"] == "trace-worker-check-1"
    assert response.json()["worker"].startswith("test-")


@pytest.mark.django_db
def test_worker_check_without_a_worker_times_out_in_the_error_format(client, make_caller):
    operator = make_caller(Role.OPERATOR)

    response = client.post(
        "/api/health/worker", {"queue": "training", "timeout": 0.5}, format="json", **operator.headers
    )

    body = assert_error(response, 504, "no_worker")
    assert "'training'" in body["message"]


@pytest.mark.django_db
def test_worker_check_is_for_operators(client, make_caller):
    predictor = make_caller(Role.PREDICTOR)

    response = client.post("/api/health/worker", {"queue": "default"}, format="json", **predictor.headers)

    assert_error(response, 403, "permission_denied")


@pytest.mark.django_db
def test_metrics_count_requests_by_view_and_status(client, viewer):
    client.get("/api/me", **viewer.headers)

    metrics = client.get("/metrics").content.decode()

    assert 'django_http_responses_total_by_status_view_method_total{method="GET",status="200",view="me"}' in metrics
    assert "django_http_requests_latency_seconds_by_view_method_bucket" in metrics


@pytest.mark.integration
@pytest.mark.django_db
def test_a_task_reaches_only_the_queue_it_was_sent_to(client, make_caller):
    operator = make_caller(Role.OPERATOR)

    with celery_worker(service_env(), queues="predictions"):
        elsewhere = client.post(
            "/api/health/worker", {"queue": "training", "timeout": 3}, format="json", **operator.headers
        )
        here = client.post(
            "/api/health/worker", {"queue": "predictions", "timeout": 30}, format="json", **operator.headers
        )

    assert elsewhere.status_code == 504  # a worker on "predictions" never sees a "training" task
    assert here.status_code == 200 and here.json()["queue"] == "predictions"
