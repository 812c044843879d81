"""Celery tasks of scheduled runs, all on the ``scheduling`` queue (config/settings.py routes).

Each is safe to run twice: a slot is claimed under the unique (run, slot) constraint, a pending
execution with a conditional update, and the reaper and the sweeper only change rows that are
still in the state they found. That is what makes ``acks_late`` safe here: a message whose
worker died is delivered again and finds its slot already taken, or takes it.
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from config.correlation import get_correlation_id
from scheduling import services

# Leave the task time to record why it stopped before the hard limit kills it.
_SOFT_LIMIT = max(5, settings.CELERY_TASK_TIME_LIMIT - 30)


@shared_task(
    name="scheduling.fire_run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=_SOFT_LIMIT,
)
def fire_run(run_id: int) -> None:
    """Beat's tick for one run: execute the slot that is due, if no one has yet."""
    services.scheduled_run_fire(run_id=run_id, correlation_id=get_correlation_id() or "")


@shared_task(
    name="scheduling.fire_runs",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=_SOFT_LIMIT,
)
def fire_runs(run_ids: list[int]) -> None:
    """Beat's ticks for several runs due at the same moment, sent as one message (scheduling/beat.py)."""
    services.scheduled_runs_fire(run_ids=run_ids, correlation_id=get_correlation_id() or "")


@shared_task(
    name="scheduling.run_execution",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=_SOFT_LIMIT,
)
def run_execution(execution_id: int) -> None:
    """Execute a manually triggered execution, unless another worker or the reaper took it."""
    execution = services.execution_start(execution_id=execution_id)
    if execution is not None:
        services.execution_perform(execution=execution)


@shared_task(name="scheduling.reap_executions", ignore_result=True, time_limit=300)
def reap_executions() -> int:
    return services.executions_reap()


@shared_task(name="scheduling.resend_overdue", ignore_result=True, time_limit=300)
def resend_overdue(after_seconds: float | None = None) -> int:
    if after_seconds is None:
        return len(services.overdue_runs_resend())
    return len(services.overdue_runs_resend(after=timedelta(seconds=after_seconds)))
