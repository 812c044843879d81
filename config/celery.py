"""The Celery application: JSON only, explicit task names, four queues, DatabaseScheduler beat.

Configuration lives in Django settings under the ``CELERY_`` prefix (config/settings.py).
"""

from __future__ import annotations

import os

from celery import Celery, signals
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class ModelOpsCelery(Celery):
    def finalize(self, auto: bool = False) -> None:
        """Check the configuration once every task is registered (worker start, first send).

        Done here, not in a signal handler: Celery logs and swallows exceptions raised by
        signal receivers, and a misconfigured worker must not start.
        """
        already = self.finalized
        super().finalize(auto=auto)
        if not already and self.finalized:
            check_visibility_timeout(self)


app = ModelOpsCelery("modelops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("config.health.tasks",)
app.autodiscover_tasks()

# Celery's Django fix-up closes every database connection before and after each task unless this
# is set, so each task would open a new PostgreSQL connection (a server process forked per task,
# 2-4 ms; a thousand scheduled runs a minute pay it a thousand times). It now closes them only
# after this many tasks, and ``_recycle_database_connections`` below applies Django's own rule
# between tasks instead, as Django does between requests (CONN_MAX_AGE, CONN_HEALTH_CHECKS).
app.conf.CELERY_DB_REUSE_MAX = 1_000_000

# Periodic work, declared in code: beat's DatabaseScheduler writes these entries into its
# PeriodicTask table each time it starts (update_or_create by name), so an interval changed
# here ships with the code, and an edit made in the admin lasts only until the next beat start.
# Each task only changes rows still in the state it found, so a second beat sending them as
# well changes nothing.
app.conf.beat_schedule = {
    **(app.conf.beat_schedule or {}),
    # Scheduled runs: lost ticks (a beat that was down, a message lost) re-sent 20-35 s after the slot.
    "scheduling.resend_overdue": {"task": "scheduling.resend_overdue", "schedule": 15.0},
    # Scheduled runs: executions whose worker died, failed once their lease runs out.
    "scheduling.reap_executions": {"task": "scheduling.reap_executions", "schedule": 60.0},
    # History: roll up closed hours for trends, then delete records past retention.
    "history-rollup": {"task": "history.rollup_closed_hours", "schedule": 300.0},
    "history-retention": {"task": "history.apply_retention", "schedule": 3600.0},
    # Bulk jobs: re-send lost work and fail jobs that stopped progressing (predictions/bulk.py).
    # On the default queue: behind a long backlog of chunks on "predictions" it would run late.
    "predictions.bulk_reap": {"task": "predictions.bulk_reap", "schedule": 60.0, "options": {"queue": "default"}},
    # Bulk jobs: delete inputs and results older than BULK_RETENTION_DAYS.
    "predictions.bulk_purge": {
        "task": "predictions.bulk_purge",
        "schedule": crontab(minute=17),
        "options": {"queue": "default"},
    },
}

# Message header that carries the correlation id from the request to the task.
CORRELATION_HEADER = "modelops_correlation_id"  # not "correlation_id": Celery uses that name for the task id


def longest_time_limit(celery_app: Celery) -> int:
    """The longest hard time limit of any registered task (or the global default)."""
    limits = [celery_app.conf.task_time_limit or 0]
    limits += [task.time_limit or 0 for task in celery_app.tasks.values()]
    return max(limits)


def check_visibility_timeout(celery_app: Celery) -> None:
    """Refuse to start if Redis could redeliver a task that is still within its time limit."""
    timeout = (celery_app.conf.broker_transport_options or {}).get("visibility_timeout")
    if timeout is None:
        return  # brokers without a visibility timeout (AMQP, file system) never redeliver early
    longest = longest_time_limit(celery_app)
    if timeout <= longest:
        raise ImproperlyConfigured(
            f"CELERY_VISIBILITY_TIMEOUT ({timeout}s) must be larger than the longest task "
            f"time limit ({longest}s), or the broker will hand running tasks to a second worker."
        )


@signals.before_task_publish.connect
def _attach_correlation_id(headers: dict | None = None, **kwargs) -> None:
    from config.correlation import get_correlation_id

    correlation_id = get_correlation_id()
    if headers is not None and correlation_id and CORRELATION_HEADER not in headers:
        headers[CORRELATION_HEADER] = correlation_id


@signals.task_prerun.connect
def _adopt_correlation_id(task=None, **kwargs) -> None:
    from config.correlation import new_correlation_id, set_correlation_id

    received = getattr(task.request, CORRELATION_HEADER, None) if task else None
    set_correlation_id(received or new_correlation_id())


@signals.task_postrun.connect
def _forget_correlation_id(**kwargs) -> None:
    from config.correlation import set_correlation_id

    set_correlation_id(None)


@signals.task_prerun.connect
@signals.task_postrun.connect
def _recycle_database_connections(task=None, **kwargs) -> None:
    """Drop connections that are broken or older than CONN_MAX_AGE; keep the others for the next task."""
    if task is not None and getattr(task.request, "is_eager", False):
        return  # runs inside the caller's transaction: closing there would break it
    from django.db import close_old_connections

    close_old_connections()


@signals.worker_process_init.connect
def _tune_garbage_collector(**kwargs) -> None:
    """Each pool process scores chunks of thousands of rows: see config/gc.py."""
    from config.gc import tune_for_serving

    tune_for_serving()
