"""History's periodic and background tasks: thin wrappers around services, named for beat."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from history.services import RETENTION_CLAIM, outcome_import_run, retention_apply, rollups_refresh


@shared_task(name="history.rollup_closed_hours", time_limit=30 * 60)
def rollup_closed_hours() -> int:
    """Every few minutes (beat): roll up the hours that closed since the last run."""
    return rollups_refresh()


@shared_task(name="history.apply_retention", time_limit=int(RETENTION_CLAIM.total_seconds()))
def apply_retention() -> dict:
    """Hourly (beat): delete raw records past the retention age, in small batches."""
    report = asdict(retention_apply())
    report["cutoff"] = report["cutoff"].isoformat() if report["cutoff"] else None
    return report


@shared_task(name="history.import_outcomes", time_limit=60 * 60)
def import_outcomes(import_id: int) -> str | None:
    imported = outcome_import_run(import_id=import_id)
    return imported.status if imported else None  # None: already claimed, or gone
