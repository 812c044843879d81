"""Readiness checks: each returns None when its dependency answers, else why it does not."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from kombu import Connection

# A readiness probe must answer fast even when a dependency hangs.
CHECK_TIMEOUT_SECONDS = 2


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return f"database unreachable ({type(exc).__name__})"
    return None


def check_broker() -> str | None:
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
            connect_timeout=CHECK_TIMEOUT_SECONDS,
        ) as broker:
            broker.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return f"broker unreachable ({type(exc).__name__})"
    return None


def check_cache() -> str | None:
    probe_key = f"readiness:{uuid.uuid4().hex}"
    try:
        cache.set(probe_key, "ok", timeout=10)
        answered = cache.get(probe_key)
        cache.delete(probe_key)
    except Exception as exc:
        return f"cache unreachable ({type(exc).__name__})"
    return None if answered == "ok" else "cache does not keep values"


def check_artifacts() -> str | None:
    """Every active model version's artifact is present and matches its sha256."""
    from predictions.status import active_artifact_problems

    try:
        problems = active_artifact_problems()
    except DatabaseError:
        return None  # cannot be checked; the database check reports the cause
    if problems:
        return "artifacts refused for " + "; ".join(f"{slug}: {why}" for slug, why in sorted(problems.items()))
    return None


READINESS_CHECKS = {
    "database": check_database,
    "broker": check_broker,
    "cache": check_cache,
    "artifacts": check_artifacts,
}


def run_readiness_checks() -> dict[str, str | None]:
    return {name: check() for name, check in READINESS_CHECKS.items()}
