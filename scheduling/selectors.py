"""Reads of scheduled runs: who sees which, and their upcoming fire times.

Visibility: everyone sees the runs they own, admins see every run. Whether a caller may change
what they see is the role's business (operator and above), not this module's. A viewer-role
key therefore reads its own user's runs, read-only (the dashboard key an operator makes for
their own schedules), and never another user's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from scheduling.models import ScheduledRun, ScheduledRunExecution

UPCOMING_COUNT = 5


def scheduled_runs_visible_to(*, user: User, role: str | None) -> QuerySet[ScheduledRun]:
    runs = ScheduledRun.objects.select_related("owner", "model", "last_execution")
    if role == Role.ADMIN:
        return runs
    return runs.filter(owner=user)


def executions_of(run: ScheduledRun) -> QuerySet[ScheduledRunExecution]:
    return run.executions.select_related("model_version", "triggered_by").order_by("-id")


def upcoming_fire_times(run: ScheduledRun, *, now: datetime | None = None) -> list[dict[str, str]]:
    """The next five slots after now, in the run's time zone and in UTC (also for a disabled run)."""
    schedule = run.schedule
    slots = schedule.upcoming(now or timezone.now(), UPCOMING_COUNT)
    return [
        {
            "local": slot.astimezone(schedule.tz).isoformat(),
            "utc": slot.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        for slot in slots
    ]
