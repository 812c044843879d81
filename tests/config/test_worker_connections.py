"""A real worker keeps its database connection from one task to the next."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from scheduling.tasks import reap_executions
from tests.live import celery_worker, service_env

TASKS = 12


def sessions_opened() -> int:
    """Connections ever opened to the test database (PostgreSQL's own counter)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # statistics are otherwise frozen per transaction
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def wait_for_succeeded(log_path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while log_path.read_text().count("succeeded in") < count:
        assert time.monotonic() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.1)


@pytest.mark.django_db
def test_a_worker_reuses_its_database_connection_across_tasks():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL counts the sessions opened; SQLite has no server to connect to")
    before = sessions_opened()

    with celery_worker(service_env()) as worker:
        for _ in range(TASKS):
            reap_executions.apply_async()  # each one queries the database
        wait_for_succeeded(worker.log_path, TASKS)

    # The worker's main process and its pool process connect once or twice each; Celery's
    # default would have opened a connection per task.
    assert sessions_opened() - before <= 4
