"""Each run's beat entry (PeriodicTask + CrontabSchedule) follows every change, from the API and the admin."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from scheduling.models import ScheduledRun

pytestmark = pytest.mark.django_db


def beat_entry(run_id: int) -> dict:
    task = PeriodicTask.objects.select_related("crontab").get(scheduled_run__pk=run_id)
    crontab = task.crontab
    return {
        "task": task.task,
        "kwargs": json.loads(task.kwargs),
        "enabled": task.enabled,
        "cron": f"{crontab.minute} {crontab.hour} {crontab.day_of_month} {crontab.month_of_year} {crontab.day_of_week}",
        "timezone": str(crontab.timezone),
    }


def beat_change_marker():
    return PeriodicTasks.last_change()


def test_every_api_change_reaches_the_beat_entry(client, owner, catalog):
    body = {
        "model_name": "churn",
        "schedule": "*/15 9-17 * * mon-fri",
        "parameters": {"source": "generator", "count": 1},
    }

    run_id = client.post("/api/scheduled", body, format="json", **owner.headers).json()["id"]
    created = beat_entry(run_id)
    marker = beat_change_marker()
    client.patch(f"/api/scheduled/{run_id}", {"schedule": "0 6 * * *"}, format="json", **owner.headers)
    recron = beat_entry(run_id)
    client.patch(f"/api/scheduled/{run_id}", {"timezone": "Asia/Tokyo"}, format="json", **owner.headers)
    rezoned = beat_entry(run_id)
    client.patch(f"/api/scheduled/{run_id}", {"enabled": False}, format="json", **owner.headers)
    disabled = beat_entry(run_id)
    client.patch(f"/api/scheduled/{run_id}", {"enabled": True}, format="json", **owner.headers)
    enabled = beat_entry(run_id)
    crontab_id = PeriodicTask.objects.get(scheduled_run__pk=run_id).crontab_id
    client.delete(f"/api/scheduled/{run_id}", **owner.headers)

    assert created == {
        "task": "scheduling.fire_run",
        "kwargs": {"run_id": run_id},
        "enabled": True,
        "cron": "0,15,30,45 9-17 * * 1-5",
        "timezone": "UTC",
    }
    assert recron["cron"] == "0 6 * * *" and rezoned["timezone"] == "Asia/Tokyo"
    assert disabled["enabled"] is False and enabled["enabled"] is True
    assert beat_change_marker() > marker  # beat's DatabaseScheduler reloads on this
    assert not PeriodicTask.objects.filter(kwargs__contains=f'"run_id": {run_id}').exists()
    assert not CrontabSchedule.objects.filter(pk=crontab_id).exists()


def test_a_change_that_does_not_touch_the_schedule_leaves_beat_alone(client, owner, make_run, catalog):
    run = make_run(owner)
    marker = beat_change_marker()

    client.patch(f"/api/scheduled/{run.pk}", {"misfire_policy": "skip"}, format="json", **owner.headers)

    assert beat_change_marker() == marker


def test_a_refused_change_leaves_the_beat_entry_as_it_was(client, owner, make_run, catalog):
    run = make_run(owner, cron="@hourly")
    before = beat_entry(run.pk)

    response = client.patch(f"/api/scheduled/{run.pk}", {"schedule": "* * 31 2 *"}, format="json", **owner.headers)

    assert response.status_code == 400 and beat_entry(run.pk) == before


def test_cron_either_rule_wakes_beat_daily(owner, make_run, catalog):
    run = make_run(owner, cron="0 9 1 * mon")

    assert beat_entry(run.pk)["cron"] == "0 9 * * *"


def test_admin_add_change_actions_and_delete_keep_beat_in_sync(admin_client, make_caller, catalog):
    from predictions.models import MLModel

    churn_id = MLModel.objects.get(slug="churn").pk
    form = {
        "name": "from the admin",
        "model": churn_id,
        "cron": "30 2 * * *",
        "timezone": "Europe/Paris",
        "parameters": json.dumps({"source": "generator", "count": 10}),
        "misfire_policy": "skip",
        "enabled": "on",
    }

    added = admin_client.post("/admin/scheduling/scheduledrun/add/", form)
    run = ScheduledRun.objects.get(name="from the admin")
    after_add = beat_entry(run.pk)
    inline = {"executions-TOTAL_FORMS": 0, "executions-INITIAL_FORMS": 0}
    changed = admin_client.post(
        f"/admin/scheduling/scheduledrun/{run.pk}/change/", {**form, **inline, "cron": "45 3 * * *"}
    )
    after_change = beat_entry(run.pk)
    admin_client.post("/admin/scheduling/scheduledrun/", {"action": "disable", "_selected_action": [run.pk]})
    after_disable = beat_entry(run.pk)
    admin_client.post("/admin/scheduling/scheduledrun/", {"action": "enable", "_selected_action": [run.pk]})
    after_enable = beat_entry(run.pk)
    admin_client.post(f"/admin/scheduling/scheduledrun/{run.pk}/delete/", {"post": "yes"})

    assert added.status_code == 302 and changed.status_code == 302
    assert after_add["cron"] == "30 2 * * *" and after_add["timezone"] == "Europe/Paris"
    assert after_change["cron"] == "45 3 * * *"
    assert after_disable["enabled"] is False and after_enable["enabled"] is True
    assert not ScheduledRun.objects.exists() and not PeriodicTask.objects.filter(task="scheduling.fire_run").exists()


def test_the_repair_command_rebuilds_missing_entries_and_drops_orphans(owner, make_run, catalog):
    run = make_run(owner, cron="@daily")
    PeriodicTask.objects.filter(scheduled_run__pk=run.pk).delete()  # deleted by hand in the beat admin
    orphan_crontab = CrontabSchedule.objects.create(minute="1")
    PeriodicTask.objects.create(name="scheduled-run-9999", task="scheduling.fire_run", crontab=orphan_crontab)

    call_command("sync_scheduled_runs")

    assert beat_entry(run.pk)["cron"] == "0 0 * * *"
    assert not PeriodicTask.objects.filter(name="scheduled-run-9999").exists()


def test_beat_entries_of_runs_are_read_only_in_the_periodic_task_admin(admin_client, owner, make_run, catalog):
    run = make_run(owner)
    task_id = PeriodicTask.objects.get(scheduled_run__pk=run.pk).pk

    page = admin_client.get(f"/admin/django_celery_beat/periodictask/{task_id}/change/").content.decode()
    admin_client.post(
        "/admin/django_celery_beat/periodictask/", {"action": "disable_tasks", "_selected_action": [task_id]}
    )
    admin_client.post(f"/admin/django_celery_beat/periodictask/{task_id}/delete/", {"post": "yes"})

    assert 'name="_save"' not in page  # no save button: a view-only page
    assert PeriodicTask.objects.get(pk=task_id).enabled is True
