from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django_celery_beat.models import PeriodicTask

from scheduling.cron import CronError, Schedule, get_timezone, parse


def validate_cron(value: str) -> None:
    """Field-level guard (model forms, full_clean); the services validate the whole run."""
    try:
        parse(value)
    except CronError as exc:
        raise ValidationError(str(exc)) from None


def validate_timezone(value: str) -> None:
    try:
        get_timezone(value)
    except CronError as exc:
        raise ValidationError(exc.reason) from None


class MisfirePolicy(models.TextChoices):
    SKIP = "skip", "Skip missed slots"
    RUN_ONCE = "run_once", "Run once for all missed slots"


class ScheduledRun(models.Model):
    """An operator's cron schedule for scoring a model on an input, fired by celery beat.

    ``next_run_at`` is the claim pointer: the earliest slot not yet handled. The worker that
    handles a slot moves it on, under this row's lock, and the unique (run, slot) constraint of
    the executions guarantees a slot is never executed twice whatever beat sends.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="scheduled_runs")
    model = models.ForeignKey("predictions.MLModel", on_delete=models.PROTECT, related_name="scheduled_runs")
    name = models.CharField(max_length=120)
    cron = models.CharField(
        "schedule",
        max_length=200,
        validators=[validate_cron],
        help_text="Five cron fields: minute hour day-of-month month day-of-week.",
    )
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone], help_text="IANA time zone the cron is read in."
    )
    enabled = models.BooleanField(default=True)
    parameters = models.JSONField(help_text="The input: a stored dataset, a list of rows, or a generator spec.")
    misfire_policy = models.CharField(max_length=10, choices=MisfirePolicy.choices, default=MisfirePolicy.RUN_ONCE)
    periodic_task = models.OneToOneField(
        PeriodicTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="scheduled_run", editable=False
    )
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="Next slot to run (UTC).")
    # When the cron or time zone last changed: slots of the new rule start after this moment.
    schedule_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_execution = models.ForeignKey(
        "ScheduledRunExecution", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    disabled_reason = models.TextField(blank=True, editable=False)
    # The pending slot the sweeper last re-sent a tick for: at most one recovery per slot.
    recovery_sent_for = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["owner", "-id"], name="scheduled_run_owner"),
            # The sweeper's query: enabled runs whose next slot is long past.
            models.Index(fields=["next_run_at"], name="scheduled_run_due", condition=Q(enabled=True)),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def schedule(self) -> Schedule:
        return Schedule.from_text(self.cron, self.timezone)


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual"


class ExecutionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


UNFINISHED = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)


class ScheduledRunExecution(models.Model):
    """One execution of a run: for a slot of its schedule, or triggered by hand (no slot)."""

    # Not indexed alone: the (run, slot) constraint and the (run, -id) index both start with it.
    run = models.ForeignKey(ScheduledRun, on_delete=models.CASCADE, related_name="executions", db_index=False)
    slot = models.DateTimeField(null=True, blank=True, help_text="The slot it was scheduled for; empty if manual.")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=10, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the worker.")
    finished_at = models.DateTimeField(null=True, blank=True)
    rows_scored = models.PositiveIntegerField(default=0)
    model_version = models.ForeignKey(
        "predictions.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    missed_slots = models.PositiveIntegerField(default=0, help_text="Slots missed before this one (misfire policy).")
    error = models.TextField(blank=True)
    note = models.TextField(blank=True)
    correlation_id = models.CharField(max_length=128, blank=True)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            # The guard: a second beat, a re-sent tick or a redelivered task cannot run a slot twice.
            models.UniqueConstraint(fields=["run", "slot"], name="one_execution_per_run_slot"),
            models.CheckConstraint(
                condition=Q(trigger="schedule", slot__isnull=False) | Q(trigger="manual", slot__isnull=True),
                name="scheduled_executions_have_a_slot",
            ),
        ]
        indexes = [
            models.Index(fields=["run", "-id"], name="execution_run_newest"),
            # The reaper's query: only unfinished executions, a handful at any time.
            models.Index(
                fields=["status", "heartbeat_at"], name="execution_unfinished", condition=Q(status__in=UNFINISHED)
            ),
        ]

    def __str__(self) -> str:
        return f"execution {self.pk} of run {self.run_id}"


class BeatLease(models.Model):
    """Which beat process sends the schedule: the one holding this lease (scheduling/leases.py).

    Every beat keeps renewing it or trying to take it; only the holder sends due entries, so a
    second beat stands by instead of sending every tick twice, and takes over within 1.25 x
    ``SCHEDULING_BEAT_LEASE_SECONDS`` of the holder dying.
    """

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=200, help_text="host:pid:nonce of the beat holding the lease.")
    expires_at = models.DateTimeField()
    acquired_at = models.DateTimeField(help_text="When this holder took the lease.")

    def __str__(self) -> str:
        return f"{self.name} lease held by {self.holder}"
