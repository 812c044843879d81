"""Scheduled runs: their lifecycle, their beat entries, and the execution of their slots.

Exactly once per slot. Beat sends a tick at each cron time (``scheduling.fire_runs`` with the
ids of the runs due together, or ``scheduling.fire_run(run_id)`` from the sweeper), but a tick
says nothing about which slot it is for: the worker works it out from the run's
``next_run_at`` (the earliest slot not yet handled) and the clock. Under the run's row lock it
records an execution for that slot and moves ``next_run_at`` to the following slot, in one
transaction; the unique (run, slot) constraint on executions is the guard behind the lock. So a
second beat, a tick re-sent by the sweeper or a redelivered message finds the slot taken and
does nothing, and a tick that arrives late still handles the slot it was for.

Misfires. A slot started more than ``SCHEDULING_MISFIRE_GRACE_SECONDS`` after its time is
*missed* (beat or the workers were down). The run's misfire policy decides: ``skip`` records one
``skipped`` execution standing for every missed slot and carries on with the next slot;
``run_once`` runs once for all of them, now (or, if a slot is due on time anyway, that one run
stands for the missed ones). Either way a run never executes a backlog of missed slots one by one.

Beat entries. Each run has one ``django_celery_beat`` ``PeriodicTask`` with its own
``CrontabSchedule``, written here (never behind beat's back) on every create, update, enable,
disable and delete, so beat's database scheduler notices the change.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.models import User
from history.models import Source
from predictions.catalog import CATALOG, get_catalog_model
from predictions.catalog.base import CatalogModel
from predictions.catalog.validation import validate_rows
from predictions.datasets import dataset_frame
from predictions.models import MLModel
from predictions.selectors import catalog_models, datasets_of, version_by_number
from predictions.services import Caller, PredictionInputError, predictions_make
from predictions.serving import ModelUnavailable, registry
from scheduling.cron import CronError, get_timezone, parse
from scheduling.models import (
    ExecutionStatus,
    MisfirePolicy,
    ScheduledRun,
    ScheduledRunExecution,
    Trigger,
)

logger = logging.getLogger(__name__)

FIRE_TASK = "scheduling.fire_run"
# Scoring works through the input in chunks this size: each chunk is one history write and one
# heartbeat, and a generated input never holds more than one chunk in memory.
CHUNK_ROWS = 10_000
# A generator spec is for demos and load tests; a million rows take about a minute to score.
MAX_GENERATED_ROWS = 1_000_000
# Rows kept inside the run's parameters: more belongs in a stored dataset.
MAX_INLINE_ROWS = 10_000
# Validation errors reported for inline rows; the count says how many more there were.
MAX_REPORTED_ROW_ERRORS = 20
# Missed slots are counted up to this many for the record; beyond, the count says "or more".
MAX_COUNTED_MISSES = 10_000
# A tick that arrives this much before the slot it is for (beat's clock ahead of the worker's)
# waits for it instead of leaving the slot to the next tick.
CLOCK_SKEW_TOLERANCE = timedelta(seconds=2)
# The sweeper re-sends a tick for a slot still unhandled this long after its time (a lost
# message, a beat that was down); below the misfire grace, so the slot still runs on time.
SWEEP_AFTER = timedelta(seconds=20)
SWEEP_BATCH = 1_000
# Safety bound on the slots one tick handles; there are at most grace/period + 1 of them.
MAX_SLOTS_PER_TICK = 100


class ScheduledRunInvalid(Exception):
    """The run's fields are refused; ``errors`` maps each field to why (a string or a mapping)."""

    def __init__(self, errors: dict[str, Any]):
        super().__init__("; ".join(f"{field}: {error}" for field, error in errors.items()))
        self.errors = errors


class ExecutionAbandoned(Exception):
    """The execution is no longer running (reaped, or its run deleted): stop scoring."""


class ExecutionInputError(Exception):
    """The run's input cannot be read (its dataset was deleted, ...)."""


# --- Validation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanRun:
    model: MLModel
    cron: str
    timezone: str
    parameters: dict[str, Any]


def scheduled_run_validate(
    *,
    model_slug: str,
    cron: str,
    timezone_name: str,
    parameters: Any,
    misfire_policy: str = MisfirePolicy.RUN_ONCE,
    check_parameters: bool = True,
) -> CleanRun:
    """Check everything a run needs before anything is written; the API and the admin both call this.

    ``check_parameters=False`` keeps stored parameters as they are (an update that changes neither
    them nor the model), so that a run whose dataset was deleted can still be renamed or disabled.
    """
    errors: dict[str, Any] = {}
    model = catalog_models().filter(slug=model_slug).first() if isinstance(model_slug, str) else None
    if model is None:
        errors["model"] = f"Unknown model {model_slug!r}; choose one of {', '.join(CATALOG)}."
    expression = cron
    try:
        expression = parse(cron).expression
    except CronError as exc:
        errors["cron"] = str(exc)
    try:
        get_timezone(timezone_name)
    except CronError as exc:
        errors["timezone"] = exc.reason
    if misfire_policy not in MisfirePolicy.values:
        errors["misfire_policy"] = f"Must be one of: {', '.join(MisfirePolicy.values)}."
    clean_parameters = parameters
    if model is not None and check_parameters:
        try:
            clean_parameters = _parameters_validate(get_catalog_model(model.slug), model, parameters)
        except ScheduledRunInvalid as exc:
            errors["parameters"] = exc.errors
    if errors:
        raise ScheduledRunInvalid(errors)
    return CleanRun(model=model, cron=expression, timezone=timezone_name, parameters=clean_parameters)


def _parameters_validate(spec: CatalogModel, model: MLModel, parameters: Any) -> dict[str, Any]:
    if not isinstance(parameters, dict) or parameters.get("source") not in ("dataset", "rows", "generator"):
        raise ScheduledRunInvalid(
            {"source": "Give the input as {'source': 'dataset' | 'rows' | 'generator', ...} (see the documentation)."}
        )
    source = parameters["source"]
    allowed = {"dataset": {"dataset_id"}, "rows": {"rows", "entity_ids"}, "generator": {"count", "seed", "drift"}}
    unknown = set(parameters) - allowed[source] - {"source"}
    if unknown:
        raise ScheduledRunInvalid(
            {name: f"Unknown for source '{source}'; allowed: {', '.join(sorted(allowed[source]))}." for name in unknown}
        )
    if source == "dataset":
        return _dataset_parameters(model, parameters)
    if source == "rows":
        return _rows_parameters(spec, parameters)
    return _generator_parameters(parameters)


def _dataset_parameters(model: MLModel, parameters: dict) -> dict:
    dataset_id = parameters.get("dataset_id")
    if not _is_int(dataset_id) or dataset_id < 1:
        raise ScheduledRunInvalid({"dataset_id": "Must be the id of a stored dataset (GET /api/datasets)."})
    if not datasets_of(model).filter(pk=dataset_id).exists():
        raise ScheduledRunInvalid({"dataset_id": f"No dataset {dataset_id} for model '{model.slug}'."})
    return {"source": "dataset", "dataset_id": dataset_id}


def _rows_parameters(spec: CatalogModel, parameters: dict) -> dict:
    rows = parameters.get("rows")
    if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_INLINE_ROWS:
        raise ScheduledRunInvalid(
            {"rows": f"Must be a list of 1 to {MAX_INLINE_ROWS} rows of features; store more as a dataset."}
        )
    checked = validate_rows(spec.features, rows)
    if checked.errors:
        reported = dict(list(checked.errors.items())[:MAX_REPORTED_ROW_ERRORS])
        details: dict[str, Any] = {str(index): errors for index, errors in reported.items()}
        if len(checked.errors) > len(reported):
            details["more"] = f"{len(checked.errors) - len(reported)} more invalid row(s)."
        raise ScheduledRunInvalid({"rows": details})
    clean: dict[str, Any] = {"source": "rows", "rows": rows}
    entity_ids = parameters.get("entity_ids")
    if entity_ids is not None:
        if (
            not isinstance(entity_ids, list)
            or len(entity_ids) != len(rows)
            or not all(isinstance(e, str) and len(e) <= 120 and e.isprintable() for e in entity_ids)
        ):
            raise ScheduledRunInvalid(
                {"entity_ids": "Must be a list of printable ids of at most 120 characters, one per row."}
            )
        clean["entity_ids"] = entity_ids
    return clean


def _generator_parameters(parameters: dict) -> dict:
    errors = {}
    count, seed, drift = parameters.get("count"), parameters.get("seed"), parameters.get("drift", 0.0)
    if not _is_int(count) or not 1 <= count <= MAX_GENERATED_ROWS:
        errors["count"] = f"Must be a whole number of rows from 1 to {MAX_GENERATED_ROWS}."
    if seed is not None and (not _is_int(seed) or not 0 <= seed < 2**32):
        errors["seed"] = "Must be a whole number from 0 to 4294967295, or null for new rows at every execution."
    if isinstance(drift, bool) or not isinstance(drift, (int, float)) or not 0 <= drift <= 1:
        errors["drift"] = "Must be a number from 0 (the training world) to 1."
    if errors:
        raise ScheduledRunInvalid(errors)
    return {"source": "generator", "count": count, "seed": seed, "drift": float(drift)}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- Lifecycle -----------------------------------------------------------------------------------


@transaction.atomic
def scheduled_run_create(
    *,
    owner: User,
    model_slug: str,
    cron: str,
    parameters: Any,
    name: str = "",
    timezone_name: str = "UTC",
    misfire_policy: str = MisfirePolicy.RUN_ONCE,
    enabled: bool = True,
    now: datetime | None = None,
) -> ScheduledRun:
    clean = scheduled_run_validate(
        model_slug=model_slug,
        cron=cron,
        timezone_name=timezone_name,
        parameters=parameters,
        misfire_policy=misfire_policy,
    )
    now = now or timezone.now()
    run = ScheduledRun(
        owner=owner,
        model=clean.model,
        name=_clean_name(name) or f"{clean.model.slug} {clean.cron}"[:120],
        cron=clean.cron,
        timezone=clean.timezone,
        parameters=clean.parameters,
        misfire_policy=misfire_policy,
        enabled=enabled,
        schedule_changed_at=now,
    )
    run.next_run_at = run.schedule.next_after(now) if enabled else None
    run.save()
    _periodic_task_sync(run)
    return run


def _clean_name(name: Any) -> str:
    if name is None:
        return ""
    if not isinstance(name, str) or len(name) > 120 or not name.isprintable():
        raise ScheduledRunInvalid({"name": "Must be printable text of at most 120 characters."})
    return name.strip()


@transaction.atomic
def scheduled_run_update(
    *,
    run: ScheduledRun,
    now: datetime | None = None,
    name: str | None = None,
    model_slug: str | None = None,
    cron: str | None = None,
    timezone_name: str | None = None,
    parameters: Any = None,
    misfire_policy: str | None = None,
    enabled: bool | None = None,
) -> ScheduledRun:
    """Change any of a run's fields (None leaves one as it is); validated as a whole, as on create.

    A new cron or time zone takes effect from the next slot: slots of the new rule start after
    this moment, and a slot of the old rule that is already due (its tick on its way) still runs.
    """
    now = now or timezone.now()
    run = ScheduledRun.objects.select_for_update(of=("self",)).select_related("model").get(pk=run.pk)
    clean = scheduled_run_validate(
        model_slug=run.model.slug if model_slug is None else model_slug,
        cron=run.cron if cron is None else cron,
        timezone_name=run.timezone if timezone_name is None else timezone_name,
        parameters=run.parameters if parameters is None else parameters,
        misfire_policy=run.misfire_policy if misfire_policy is None else misfire_policy,
        check_parameters=parameters is not None or (model_slug is not None and model_slug != run.model.slug),
    )
    if name is not None:
        run.name = _clean_name(name) or run.name
    rule_changed = (clean.cron, clean.timezone) != (run.cron, run.timezone)
    run.model, run.cron, run.timezone, run.parameters = clean.model, clean.cron, clean.timezone, clean.parameters
    if misfire_policy is not None:
        run.misfire_policy = misfire_policy
    if rule_changed:
        run.schedule_changed_at = now
        if run.enabled and not _due_on_time(run.next_run_at, now):
            run.next_run_at = run.schedule.next_after(now)
    run.save()
    if enabled is not None and enabled != run.enabled:
        return scheduled_run_set_enabled(run=run, enabled=enabled, now=now)
    _periodic_task_sync(run)
    return run


def _due_on_time(slot: datetime | None, now: datetime) -> bool:
    return slot is not None and now - _grace() <= slot <= now


@transaction.atomic
def scheduled_run_set_enabled(
    *, run: ScheduledRun, enabled: bool, reason: str = "", now: datetime | None = None
) -> ScheduledRun:
    """Enable (from the next slot after now) or disable a run; ``reason`` says why it was disabled."""
    now = now or timezone.now()
    run = ScheduledRun.objects.select_for_update(of=("self",)).select_related("model").get(pk=run.pk)
    if enabled and not run.enabled:
        run.enabled, run.consecutive_failures, run.disabled_reason = True, 0, ""
        run.next_run_at = run.schedule.next_after(now)
    elif not enabled and run.enabled:
        run.enabled, run.next_run_at, run.disabled_reason = False, None, reason
    else:
        return run
    run.save(update_fields=["enabled", "consecutive_failures", "disabled_reason", "next_run_at", "updated_at"])
    _periodic_task_sync(run)
    return run


@transaction.atomic
def scheduled_run_delete(*, run: ScheduledRun) -> None:
    """Delete the run with its executions and its beat entry (history keeps its predictions)."""
    task = PeriodicTask.objects.select_related("crontab").filter(scheduled_run=run).first()
    run.delete()
    if task is not None:
        crontab = task.crontab
        task.delete()
        if crontab is not None and not crontab.periodictask_set.exists():
            crontab.delete()


def _periodic_task_sync(run: ScheduledRun) -> PeriodicTask:
    """Make the run's beat entry match it; saves only what differs, so beat reloads only on change."""
    fields = {**run.schedule.cron.beat_fields(), "timezone": run.timezone}
    task = PeriodicTask.objects.select_related("crontab").filter(pk=run.periodic_task_id).first()
    crontab = task.crontab if task is not None else None
    crontab_changed = crontab is None or any(str(getattr(crontab, k)) != v for k, v in fields.items())
    if crontab is None:
        crontab = CrontabSchedule.objects.create(**fields)
    elif crontab_changed:
        for key, value in fields.items():
            setattr(crontab, key, value)
        crontab.save()
    desired = {
        "name": f"scheduled-run-{run.pk}",
        "task": FIRE_TASK,
        "kwargs": json.dumps({"run_id": run.pk}),
        "crontab": crontab,
        "enabled": run.enabled,
        "description": f"Scheduled run {run.pk} ({run.name}). Managed by the scheduling app: edit the run, not this.",
    }
    if task is None:
        task = PeriodicTask.objects.create(**desired)
        run.periodic_task = task
        ScheduledRun.objects.filter(pk=run.pk).update(periodic_task=task)
        return task
    changed = [key for key, value in desired.items() if getattr(task, key) != value]
    if changed or crontab_changed:
        for key in changed:
            setattr(task, key, desired[key])
        if crontab_changed:
            task.last_run_at = None  # beat counts the new rule from now, not from the old rule's last tick
        task.save()
    return task


def scheduled_runs_sync_periodic_tasks() -> tuple[int, int]:
    """Repair: give every run its beat entry as it should be, delete entries of runs that are gone.

    Returns (runs synced, orphan entries deleted).
    """
    synced = 0
    for run in ScheduledRun.objects.select_related("model").iterator():
        with transaction.atomic():
            _periodic_task_sync(run)
        synced += 1
    orphans = PeriodicTask.objects.filter(task=FIRE_TASK, scheduled_run__isnull=True)
    deleted = 0
    for task in orphans:
        crontab = task.crontab
        task.delete()
        if crontab is not None and not crontab.periodictask_set.exists():
            crontab.delete()
        deleted += 1
    return synced, deleted


@transaction.atomic
def scheduled_run_trigger(*, run: ScheduledRun, user: User | None, correlation_id: str = "") -> ScheduledRunExecution:
    """Queue an execution now, outside the schedule (also for a disabled run); returns it, pending."""
    from scheduling.tasks import run_execution

    execution = ScheduledRunExecution.objects.create(
        run=run,
        trigger=Trigger.MANUAL,
        status=ExecutionStatus.PENDING,
        triggered_by=user,
        correlation_id=correlation_id,
    )
    ScheduledRun.objects.filter(pk=run.pk).update(last_execution=execution)
    transaction.on_commit(lambda: run_execution.delay(execution.pk))
    return execution


# --- Slots -----------------------------------------------------------------------------------------


def _grace() -> timedelta:
    return timedelta(seconds=settings.SCHEDULING_MISFIRE_GRACE_SECONDS)


@dataclass(frozen=True)
class _Plan:
    slot: datetime
    status: str
    missed: int
    following: datetime
    note: str = ""


def _plan(run: ScheduledRun, now: datetime) -> _Plan:
    """What to do about the run's pending slot, given the time and the misfire policy."""
    schedule = run.schedule
    pending = run.next_run_at
    # Slots of the current rule start after its last change; an older pending slot still runs.
    changed = run.schedule_changed_at or pending

    def following(slot: datetime) -> datetime:
        return schedule.next_after(max(slot, changed))

    if now - pending <= _grace():
        return _Plan(pending, ExecutionStatus.RUNNING, 0, following(pending))
    latest_missed = schedule.latest_at_or_before(now - _grace(), not_before=max(pending, changed)) or pending
    missed = max(1, schedule.count_between(pending, latest_missed, limit=MAX_COUNTED_MISSES))
    missed_text = f"{missed:,}{' or more' if missed >= MAX_COUNTED_MISSES else ''} slot(s)"
    span = f"from {pending.isoformat()} to {latest_missed.isoformat()}"
    after_missed = following(latest_missed)
    if run.misfire_policy == MisfirePolicy.SKIP:
        note = f"Missed {missed_text} {span} while beat or the workers were down; skipped (misfire policy 'skip')."
        return _Plan(latest_missed, ExecutionStatus.SKIPPED, missed, after_missed, note)
    note = f"Runs once for {missed_text} missed {span} (misfire policy 'run_once')."
    if after_missed <= now:  # a slot is due on time anyway: that run stands for the missed ones
        return _Plan(after_missed, ExecutionStatus.RUNNING, missed, following(after_missed), note)
    return _Plan(latest_missed, ExecutionStatus.RUNNING, missed, after_missed, note)


class _SlotTaken(Exception):
    def __init__(self, slot: datetime, following: datetime):
        self.slot, self.following = slot, following


@dataclass(frozen=True)
class _Claim:
    execution: ScheduledRunExecution | None  # None: nothing is due
    next_slot: datetime | None  # the run's pending slot after this claim (None: disabled or gone)


def _new_execution(run: ScheduledRun, plan: _Plan, started: datetime, correlation_id: str) -> ScheduledRunExecution:
    running = plan.status == ExecutionStatus.RUNNING
    return ScheduledRunExecution(
        run=run,
        slot=plan.slot,
        trigger=Trigger.SCHEDULE,
        status=plan.status,
        started_at=started if running else None,
        heartbeat_at=started if running else None,
        finished_at=None if running else started,
        missed_slots=plan.missed,
        note=plan.note,
        correlation_id=correlation_id,
    )


def _slot_claim(*, run_id: int, now: datetime, correlation_id: str) -> _Claim:
    """Record the execution of the run's due slot and move the run on to the next slot, atomically."""
    plan = None
    try:
        with transaction.atomic():
            run = ScheduledRun.objects.select_for_update(of=("self",)).select_related("model").filter(pk=run_id).first()
            if run is None or not run.enabled:
                return _Claim(None, None)
            if run.next_run_at is None or run.next_run_at > now:
                return _Claim(None, run.next_run_at)
            plan = _plan(run, now)
            # No savepoint: a conflict on (run, slot) rolls the whole claim back.
            execution = _new_execution(run, plan, timezone.now(), correlation_id)
            execution.save(force_insert=True)
            run.next_run_at, run.last_execution = plan.following, execution
            run.save(update_fields=["next_run_at", "last_execution"])
    except IntegrityError:
        if plan is None:
            raise
        raise _SlotTaken(plan.slot, plan.following) from None
    execution.run = run
    return _Claim(execution, plan.following)


def _slots_claim_many(*, run_ids: list[int], now: datetime, correlation_id: str) -> tuple[list[_Claim], list[int]]:
    """``_slot_claim`` for several runs in one transaction: a handful of statements instead of four per run.

    Returns the claims made and the runs whose slot is due within CLOCK_SKEW_TOLERANCE (beat's
    clock a little ahead), which the one-run path waits for. Raises IntegrityError, having
    changed nothing, if a slot was already executed.
    """
    with transaction.atomic():
        # Rows locked in primary-key order, the same order in every worker: two batches sharing
        # runs (two beats) wait for each other instead of deadlocking.
        runs = list(
            ScheduledRun.objects.select_for_update(of=("self",))
            .select_related("model")
            .filter(pk__in=run_ids, enabled=True, next_run_at__isnull=False)
            .order_by("pk")
        )
        due = [(run, _plan(run, now)) for run in runs if run.next_run_at <= now]
        almost_due = [run.pk for run in runs if now < run.next_run_at <= now + CLOCK_SKEW_TOLERANCE]
        started = timezone.now()
        executions = ScheduledRunExecution.objects.bulk_create(
            [_new_execution(run, plan, started, correlation_id) for run, plan in due]
        )
        claims = []
        for (run, plan), execution in zip(due, executions, strict=True):
            run.next_run_at, run.last_execution = plan.following, execution
            execution.run = run
            claims.append(_Claim(execution, plan.following))
        _runs_move_on([run for run, _ in due])
    return claims, almost_due


def _runs_move_on(runs: list[ScheduledRun]) -> None:
    """Save each run's ``next_run_at`` and ``last_execution`` in one statement.

    Written out rather than ``bulk_update``, which builds a ``Case(When(...))`` expression with a
    cast per row and field: ~2 ms to compile for ten runs, more than the update itself.
    """
    if not runs:
        return
    quote, adapt = connection.ops.quote_name, connection.ops.adapt_datetimefield_value
    whens = " ".join(["WHEN %s THEN %s"] * len(runs))
    sql = (
        f"UPDATE {quote(ScheduledRun._meta.db_table)} SET "  # noqa: S608 (names from the model, values as parameters)
        f"{quote('next_run_at')} = CASE {quote('id')} {whens} END, "
        f"{quote('last_execution_id')} = CASE {quote('id')} {whens} END "
        f"WHERE {quote('id')} IN ({', '.join(['%s'] * len(runs))})"
    )
    params = [value for run in runs for value in (run.pk, adapt(run.next_run_at))]
    params += [value for run in runs for value in (run.pk, run.last_execution_id)]
    params += [run.pk for run in runs]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def scheduled_run_fire(
    *, run_id: int, now: datetime | None = None, correlation_id: str = ""
) -> list[ScheduledRunExecution]:
    """A tick from beat (or the sweeper): handle each of the run's slots that is due, one at a time.

    Only slots due at ``now`` (the tick's arrival) are handled, so a long execution never makes
    a tick run on into later slots; their own ticks handle them.
    """
    now = now or timezone.now()
    handled: list[ScheduledRunExecution] = []
    for _ in range(MAX_SLOTS_PER_TICK):
        try:
            claim = _slot_claim(run_id=run_id, now=now, correlation_id=correlation_id)
        except _SlotTaken as taken:
            # Only a pointer moved back by hand gets here: the lock already serialises claims.
            logger.warning("run %s: slot %s was already executed; moving on", run_id, taken.slot.isoformat())
            ScheduledRun.objects.filter(pk=run_id, next_run_at=taken.slot).update(next_run_at=taken.following)
            continue
        if claim.execution is None:
            if not handled and claim.next_slot is not None and claim.next_slot - now <= CLOCK_SKEW_TOLERANCE:
                time.sleep(max(0.0, (claim.next_slot - now).total_seconds()))  # beat's clock is a little ahead
                now = timezone.now()
                continue
            break
        handled.append(claim.execution)
        if claim.execution.status == ExecutionStatus.RUNNING:
            execution_perform(execution=claim.execution)
        if claim.next_slot > now:
            break  # nothing more is due for this tick: no need to ask the database again
    return handled


def scheduled_runs_fire(
    *, run_ids: list[int], now: datetime | None = None, correlation_id: str = ""
) -> list[ScheduledRunExecution]:
    """Ticks of several runs that fell due together (beat sends them as one message, scheduling/beat.py).

    Their slots are claimed in one transaction; small inline inputs of the same model are then
    scored together (``_perform_together``), the others one after the other. A run that needs
    more than that one claim (a backlog of due slots, a tick a little ahead of its slot, a slot
    already taken) then goes through ``scheduled_run_fire``, which handles every case.
    """
    now = now or timezone.now()
    try:
        claims, one_by_one = _slots_claim_many(run_ids=run_ids, now=now, correlation_id=correlation_id)
    except IntegrityError:
        claims, one_by_one = [], list(run_ids)
    handled = [claim.execution for claim in claims]
    for execution in _perform_together(handled):
        execution_perform(execution=execution)
    one_by_one += [claim.execution.run_id for claim in claims if claim.next_slot <= now]
    for run_id in one_by_one:
        handled += scheduled_run_fire(run_id=run_id, now=now, correlation_id=correlation_id)
    return handled


class _ScoreAlone(Exception):
    """Scoring a group together did not work out: each of its executions is scored alone."""


def _perform_together(executions: list[ScheduledRunExecution]) -> list[ScheduledRunExecution]:
    """Score running executions with inline rows of the same model as one group each; return the rest.

    A group is one validation, one predict, one history write and one status update, in one
    transaction, where one execution alone costs four statements and a commit of its own; with
    a thousand small runs due each minute, that is most of a worker's time. Anything unusual
    (an invalid row, the model unavailable, an execution reaped meanwhile) rolls the group back
    and returns it to be performed one execution at a time, which records each one's outcome.
    """
    alone: list[ScheduledRunExecution] = []
    groups: dict[str, list[ScheduledRunExecution]] = defaultdict(list)
    group_rows: dict[str, int] = defaultdict(int)
    for execution in executions:
        if execution.status != ExecutionStatus.RUNNING:
            continue
        run = execution.run
        rows = len(run.parameters["rows"]) if run.parameters["source"] == "rows" else None
        if rows is None or group_rows[run.model.slug] + rows > CHUNK_ROWS:
            alone.append(execution)
            continue
        groups[run.model.slug].append(execution)
        group_rows[run.model.slug] += rows
    for slug, group in groups.items():
        if len(group) == 1:
            alone += group
            continue
        try:
            _score_together(slug, group)
        except SoftTimeLimitExceeded:
            for execution in group:
                _finish(execution, 0, None, error="Stopped at the task time limit (CELERY_TASK_TIME_LIMIT).")
        except Exception as exc:  # the one-by-one path below records what went wrong, per execution
            logger.info("scoring %d executions of %s together: %s; scoring each alone", len(group), slug, exc)
            alone += group
    return alone


def _score_together(slug: str, group: list[ScheduledRunExecution]) -> None:
    rows, entity_ids, execution_ids = [], [], []
    for execution in group:
        parameters = execution.run.parameters
        rows += parameters["rows"]
        entity_ids += parameters.get("entity_ids") or [""] * len(parameters["rows"])
        execution_ids += [execution.pk] * len(parameters["rows"])
    started = timezone.now()
    caller = Caller(source=Source.SCHEDULED, correlation_id=group[0].correlation_id)
    with transaction.atomic():
        batch = predictions_make(
            slug=slug, rows=rows, entity_ids=entity_ids, caller=caller, scheduled_execution_ids=execution_ids
        )
        version_id = _version_id(group[0].run, batch.version_number)
        finished_at = timezone.now()
        by_rows: dict[int, list[int]] = defaultdict(list)
        for execution in group:
            by_rows[len(execution.run.parameters["rows"])].append(execution.pk)
        finished = sum(
            ScheduledRunExecution.objects.filter(pk__in=ids, status=ExecutionStatus.RUNNING).update(
                status=ExecutionStatus.SUCCEEDED,
                started_at=started,
                finished_at=finished_at,
                rows_scored=scored,
                model_version_id=version_id,
            )
            for scored, ids in by_rows.items()
        )
        if finished != len(group):
            raise _ScoreAlone(f"{len(group) - finished} execution(s) no longer running")
        run_ids = [execution.run_id for execution in group]
        ScheduledRun.objects.filter(pk__in=run_ids, consecutive_failures__gt=0).update(consecutive_failures=0)
    for execution in group:
        execution.status, execution.started_at, execution.finished_at = ExecutionStatus.SUCCEEDED, started, finished_at
        execution.rows_scored, execution.model_version_id = len(execution.run.parameters["rows"]), version_id


def overdue_runs_resend(*, now: datetime | None = None, after: timedelta = SWEEP_AFTER) -> list[int]:
    """Re-send the tick of enabled runs whose pending slot is still unhandled ``after`` its time.

    Covers ticks that never arrived (a beat that was down, a lost message, a beat entry deleted
    by hand); at most once per slot, so a backlog of queued ticks is not doubled. A beat taking
    over from one that died asks with a short ``after``: it knows ticks were lost just now.
    """
    from scheduling.tasks import fire_run

    now = now or timezone.now()
    overdue = (
        ScheduledRun.objects.filter(enabled=True, next_run_at__lte=now - after)
        .filter(Q(recovery_sent_for__isnull=True) | ~Q(recovery_sent_for=F("next_run_at")))
        .values_list("pk", "next_run_at")[:SWEEP_BATCH]
    )
    sent = []
    for run_id, slot in list(overdue):
        if ScheduledRun.objects.filter(pk=run_id, next_run_at=slot).update(recovery_sent_for=slot):
            fire_run.delay(run_id)
            sent.append(run_id)
    if sent:
        logger.warning("re-sent the tick of %d overdue scheduled run(s)", len(sent))
    return sent


# --- Executing ---------------------------------------------------------------------------------------


def execution_start(*, execution_id: int) -> ScheduledRunExecution | None:
    """Take a pending (manually triggered) execution: None if another worker or the reaper got it."""
    now = timezone.now()
    taken = ScheduledRunExecution.objects.filter(pk=execution_id, status=ExecutionStatus.PENDING).update(
        status=ExecutionStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    if not taken:
        return None
    return ScheduledRunExecution.objects.select_related("run__model").get(pk=execution_id)


def execution_perform(*, execution: ScheduledRunExecution) -> None:
    """Score the run's input with the model's active version, chunk by chunk, into history.

    Every chunk is scored by the version the first one was (a promotion during a long execution
    applies from the next one). Each chunk's predictions are committed as they are made, so
    progress survives a crash and the heartbeat shows it; the last chunk commits together with
    the execution's success.
    """
    run = execution.run
    slug = run.model.slug
    # Scoring starts now: a batch of ticks claims its slots together, then scores them one by one,
    # and the recorded start is this moment, written with the outcome (no extra statement).
    execution.started_at = timezone.now()
    caller = Caller(
        source=Source.SCHEDULED,
        correlation_id=execution.correlation_id,
        scheduled_execution_id=execution.pk,
    )
    scored, version_id = 0, None
    try:
        chunks = _with_last_flag(_input_chunks(run, execution, get_catalog_model(slug)))
        for index, (last, (rows, entity_ids)) in enumerate(chunks):
            if index:
                _heartbeat(execution, scored)
            with transaction.atomic() if last else nullcontext():
                batch = predictions_make(
                    slug=slug, rows=rows, entity_ids=entity_ids, caller=caller, version_id=version_id
                )
                scored += len(batch.prediction_ids)
                version_id = version_id or _version_id(run, batch.version_number)
                if last and not _finish(execution, scored, version_id):
                    raise ExecutionAbandoned  # reaped meanwhile: keep none of the last chunk
    except ExecutionAbandoned:
        logger.warning("execution %s stopped: it is no longer running (reaped or deleted)", execution.pk)
    except PredictionInputError as exc:
        _finish(execution, scored, version_id, error=_input_error_text(exc))
    except (ModelUnavailable, ExecutionInputError) as exc:
        _finish(execution, scored, version_id, error=str(exc))
    except SoftTimeLimitExceeded:
        _finish(execution, scored, version_id, error="Stopped at the task time limit (CELERY_TASK_TIME_LIMIT).")
    except Exception as exc:  # anything else: the execution fails, the worker carries on
        logger.exception("execution %s failed", execution.pk)
        _finish(execution, scored, version_id, error=f"Internal error ({type(exc).__name__}): {str(exc)[:500]}")


def _with_last_flag(items: Iterator) -> Iterator[tuple[bool, Any]]:
    """(is_last, item) for each item, looking one ahead."""
    iterator = iter(items)
    try:
        current = next(iterator)
    except StopIteration:
        return
    for following in iterator:
        yield False, current
        current = following
    yield True, current


def _input_chunks(
    run: ScheduledRun, execution: ScheduledRunExecution, spec: CatalogModel
) -> Iterator[tuple[list, list[str]]]:
    parameters = run.parameters
    source = parameters["source"]
    if source == "rows":
        rows = parameters["rows"]
        entity_ids = parameters.get("entity_ids") or [""] * len(rows)
        for start in range(0, len(rows), CHUNK_ROWS):
            yield rows[start : start + CHUNK_ROWS], entity_ids[start : start + CHUNK_ROWS]
    elif source == "dataset":
        dataset = datasets_of(run.model).filter(pk=parameters["dataset_id"]).first()
        if dataset is None:
            raise ExecutionInputError(f"Dataset {parameters['dataset_id']} no longer exists; edit the run's input.")
        frame = dataset_frame(dataset)[spec.feature_names()]
        for start in range(0, len(frame), CHUNK_ROWS):
            chunk = frame.iloc[start : start + CHUNK_ROWS].to_dict("records")
            yield chunk, [""] * len(chunk)
    else:
        count, drift = parameters["count"], parameters["drift"]
        seed = parameters["seed"] if parameters["seed"] is not None else execution.pk
        for index, start in enumerate(range(0, count, CHUNK_ROWS)):
            size = min(CHUNK_ROWS, count - start)
            chunk_seed = (seed * 1_000_003 + index) % 2**32  # distinct rows per chunk, reproducible per seed
            frame = spec.generate(size, seed=chunk_seed, drift=drift)[spec.feature_names()]
            yield frame.to_dict("records"), [""] * size


def _input_error_text(exc: PredictionInputError) -> str:
    first = list(exc.errors.items())[:3]
    described = "; ".join(f"row {index}: {errors}" for index, errors in first)
    return f"{len(exc.errors)} invalid row(s) in the input (the model's schema may have changed): {described}"


def _heartbeat(execution: ScheduledRunExecution, scored: int) -> None:
    alive = ScheduledRunExecution.objects.filter(pk=execution.pk, status=ExecutionStatus.RUNNING).update(
        heartbeat_at=timezone.now(), rows_scored=scored
    )
    if not alive:
        raise ExecutionAbandoned


def _finish(execution: ScheduledRunExecution, scored: int, version_id: int | None, error: str = "") -> bool:
    """Record the outcome; False if the execution was no longer running (reaped meanwhile)."""
    run = execution.run
    finished = ScheduledRunExecution.objects.filter(pk=execution.pk, status=ExecutionStatus.RUNNING).update(
        status=ExecutionStatus.FAILED if error else ExecutionStatus.SUCCEEDED,
        started_at=execution.started_at,
        finished_at=timezone.now(),
        rows_scored=scored,
        model_version_id=version_id,
        error=error,
    )
    if not finished:
        return False  # the reaper failed it and counted the failure
    if error:
        logger.warning("execution %s of run %s failed: %s", execution.pk, run.pk, error)
        _failure_count(run_id=run.pk, error=error)
    else:
        ScheduledRun.objects.filter(pk=run.pk, consecutive_failures__gt=0).update(consecutive_failures=0)
    return True


def _version_id(run: ScheduledRun, number: int) -> int | None:
    """The id of the model version that scored: the one this process has loaded, usually."""
    loaded = registry.loaded(run.model.slug)
    if loaded is not None and loaded.number == number:
        return loaded.version_id
    version = version_by_number(model_id=run.model_id, number=number)
    return version.pk if version is not None else None


@transaction.atomic
def _failure_count(*, run_id: int, error: str) -> None:
    """One more failure in a row; at SCHEDULING_AUTO_DISABLE_AFTER_FAILURES the run is disabled."""
    run = ScheduledRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None:
        return
    run.consecutive_failures += 1
    run.save(update_fields=["consecutive_failures"])
    limit = settings.SCHEDULING_AUTO_DISABLE_AFTER_FAILURES
    if limit and run.enabled and run.consecutive_failures >= limit:
        reason = f"Disabled automatically after {run.consecutive_failures} failures in a row. Last error: {error}"
        scheduled_run_set_enabled(run=run, enabled=False, reason=reason[:2000])
        logger.warning("run %s disabled after %s failures in a row", run_id, run.consecutive_failures)


def executions_reap(*, now: datetime | None = None) -> int:
    """Fail executions whose worker stopped answering (running past the lease) or that never started."""
    now = now or timezone.now()
    lease = timedelta(seconds=settings.SCHEDULING_EXECUTION_LEASE_SECONDS)
    stale = ScheduledRunExecution.objects.filter(
        Q(status=ExecutionStatus.RUNNING, heartbeat_at__lt=now - lease)
        | Q(status=ExecutionStatus.PENDING, created_at__lt=now - lease)
    ).values_list("pk", "run_id", "status", "heartbeat_at")
    reaped = 0
    for execution_id, run_id, status, heartbeat_at in list(stale):
        if status == ExecutionStatus.RUNNING:
            error = (
                f"The worker gave no sign of life for {lease.total_seconds():.0f} s (last at "
                f"{heartbeat_at.isoformat()}): it was probably stopped or killed. Marked failed by the reaper."
            )
        else:
            error = f"No worker started it within {lease.total_seconds():.0f} s. Marked failed by the reaper."
        failed = ScheduledRunExecution.objects.filter(pk=execution_id, status=status).update(
            status=ExecutionStatus.FAILED, finished_at=now, error=error
        )
        if failed:
            reaped += 1
            _failure_count(run_id=run_id, error=error)
    if reaped:
        logger.warning("reaped %d stuck scheduled execution(s)", reaped)
    return reaped
