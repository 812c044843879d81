"""Operators manage scheduled runs in the Django admin, with the API's validation and ownership."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from accounts.roles import Role
from predictions.models import MLModel
from scheduling.leases import BEAT_LEASE, lease_acquire
from scheduling.models import ScheduledRun, ScheduledRunExecution
from scheduling.services import scheduled_run_fire
from tests.factories import UserFactory
from tests.scheduling.conftest import T0

pytestmark = pytest.mark.django_db


def add_form(**overrides) -> dict:
    return {
        "name": "from the admin",
        "model": MLModel.objects.get(slug="churn").pk,
        "cron": "30 2 * * *",
        "timezone": "UTC",
        "parameters": json.dumps({"source": "generator", "count": 10}),
        "misfire_policy": "run_once",
        "enabled": "on",
        **overrides,
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cron", "61 * * * *", "minute field: 61 is out of range 0-59"),
        ("cron", "0 0 30 2 *", "never occurs in February"),
        ("cron", "* * * * * *", "Expected 5 fields"),
        ("parameters", json.dumps({"source": "rows", "rows": [{"tenure_months": "long"}]}), "Must be a number"),
        ("parameters", json.dumps({"source": "dataset", "dataset_id": 404}), "No dataset 404"),
    ],
)
def test_the_admin_refuses_what_the_api_refuses(admin_client, catalog, field, value, message):
    page = admin_client.post("/admin/scheduling/scheduledrun/add/", add_form(**{field: value}))

    assert page.status_code == 200
    assert message in page.content.decode()
    assert not ScheduledRun.objects.exists()


def test_run_now_queues_a_manual_execution(admin_client, owner, make_run, catalog):
    run = make_run(owner)

    page = admin_client.post(
        "/admin/scheduling/scheduledrun/", {"action": "run_now", "_selected_action": [run.pk]}, follow=True
    )

    execution = ScheduledRunExecution.objects.get(run=run)
    assert (execution.trigger, execution.status) == ("manual", "pending")
    assert f"execution {execution.pk} queued" in page.content.decode()


def test_the_run_page_shows_next_fire_times_and_the_latest_executions(admin_client, owner, make_run, churn):
    run = make_run(owner, cron="* * * * *", timezone_name="Europe/Paris")
    for minute in range(1, 24):
        scheduled_run_fire(run_id=run.pk, now=T0 + timedelta(minutes=minute, seconds=1))

    listing = admin_client.get("/admin/scheduling/scheduledrun/").content.decode()
    page = admin_client.get(f"/admin/scheduling/scheduledrun/{run.pk}/change/").content.decode()

    assert "succeeded" in listing and "Europe/Paris" in listing
    assert "Next five fire times" in page and re.search(r"T\d\d:\d\d:00\+0[12]:00", page) and ":00Z)" in page
    assert "Latest 20 executions" in page
    assert page.count("/admin/scheduling/scheduledrunexecution/") >= 20


def test_operators_see_only_their_own_runs_and_viewers_cannot_change_them(client, make_run, catalog):
    operator = UserFactory(username="staff-operator", role=Role.OPERATOR, is_staff=True)
    viewer = UserFactory(username="staff-viewer", role=Role.VIEWER, is_staff=True)
    other = UserFactory(username="someone-else", role=Role.OPERATOR)

    class Owner:  # make_run takes a persona; only its user matters here
        def __init__(self, user):
            self.api_key = type("Key", (), {"user": user})

    mine = make_run(Owner(operator), name="mine")
    make_run(Owner(other), name="not mine")
    viewers = make_run(Owner(viewer), name="viewer's old run")

    client.force_login(operator)
    operator_list = client.get("/admin/scheduling/scheduledrun/").content.decode()
    operator_change = client.get(f"/admin/scheduling/scheduledrun/{mine.pk}/change/").content.decode()
    client.force_login(viewer)
    viewer_list = client.get("/admin/scheduling/scheduledrun/").content.decode()
    viewer_page = client.get(f"/admin/scheduling/scheduledrun/{viewers.pk}/change/").content.decode()
    viewer_add = client.get("/admin/scheduling/scheduledrun/add/")

    assert "mine" in operator_list and "not mine" not in operator_list and 'name="_save"' in operator_change
    assert "viewer&#x27;s old run" in viewer_list and "not mine" not in viewer_list
    assert 'name="_save"' not in viewer_page and viewer_add.status_code == 403


def test_admins_see_which_beat_holds_the_lease_and_operators_do_not(admin_client, client):
    lease_acquire(name=BEAT_LEASE, holder="beat-host:4242:abc123", seconds=10)
    operator = UserFactory(username="staff-operator", role=Role.OPERATOR, is_staff=True)

    page = admin_client.get("/admin/scheduling/beatlease/")
    client.force_login(operator)
    refused = client.get("/admin/scheduling/beatlease/")

    assert page.status_code == 200 and "beat-host:4242:abc123" in page.content.decode()
    assert 'alt="True"' in page.content.decode()  # current
    assert refused.status_code == 403
