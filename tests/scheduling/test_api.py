"""/api/scheduled: create, list, read, change, delete, trigger, executions; refusals in the error format."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from scheduling.models import ScheduledRun, ScheduledRunExecution
from scheduling.services import scheduled_run_fire
from tests.accounts.test_access import assert_error
from tests.scheduling.conftest import T0, churn_rows, model_rows

pytestmark = pytest.mark.django_db


def body(**overrides) -> dict:
    return {
        "name": "Nightly churn",
        "model_name": "churn",
        "schedule": "30 2 * * *",
        "timezone": "Europe/Paris",
        "parameters": {"source": "generator", "count": 100, "seed": None, "drift": 0.0},
        **overrides,
    }


def test_an_operator_creates_a_run_and_sees_its_next_five_fire_times(client, owner, churn):
    response = client.post("/api/scheduled", body(), format="json", **owner.headers)

    assert response.status_code == 201, response.content
    run = response.json()
    assert run["owner"] == "olivia-owner" and run["model_name"] == "churn" and run["enabled"] is True
    assert run["schedule"] == "30 2 * * *" and run["timezone"] == "Europe/Paris" and run["misfire_policy"] == "run_once"
    assert run["last_status"] is None and run["consecutive_failures"] == 0
    assert len(run["next_runs"]) == 5
    first = run["next_runs"][0]
    local, utc = datetime.fromisoformat(first["local"]), datetime.fromisoformat(first["utc"])
    assert local == utc and local.strftime("%H:%M") == "02:30" and first["utc"].endswith("Z")
    assert local.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
    assert datetime.fromisoformat(run["next_run_at"]) == utc


def test_creation_defaults(client, owner, churn):
    minimal = {"model_name": "churn", "schedule": "@hourly", "parameters": {"source": "rows", "rows": churn_rows(1)}}

    run = client.post("/api/scheduled", minimal, format="json", **owner.headers).json()

    assert (run["name"], run["timezone"], run["misfire_policy"], run["enabled"]) == (
        "churn @hourly",
        "UTC",
        "run_once",
        True,
    )


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ("61 * * * *", "minute field: 61 is out of range 0-59"),
        ("*/0 * * * *", "minute field: '*/0': a step of 0"),
        ("0 0 1 1 * *", "Expected 5 fields"),
        ("", "empty"),
        ("٦١ * * * *", "minute field"),
        ("0 0 30 2 *", "day of month field: day 30 never occurs in February"),
        ("* * 31 2 *", "day of month field: day 31 never occurs in February"),
    ],
)
def test_invalid_schedules_are_a_400_naming_the_field_and_why(client, owner, churn, schedule, fragment):
    response = client.post("/api/scheduled", body(schedule=schedule), format="json", **owner.headers)

    details = assert_error(response, 400, "validation_error")["details"]
    assert list(details) == ["schedule"] and fragment in details["schedule"][0]
    assert not ScheduledRun.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"model_name": "crystal-ball"}, "model_name", "Unknown model 'crystal-ball'"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "not an IANA time zone"),
        ({"timezone": "localtime"}, "timezone", "not an IANA time zone"),
        ({"parameters": {"source": "rows", "rows": [{"tenure_months": -3}]}}, "parameters", "at least"),
        ({"parameters": {"source": "rows", "rows": []}}, "parameters", "1 to 10000 rows"),
        ({"parameters": {"source": "dataset", "dataset_id": 999}}, "parameters", "No dataset 999"),
        ({"parameters": {"source": "generator", "count": 0}}, "parameters", "from 1 to 1000000"),
        ({"parameters": {"source": "generator", "count": 5, "drift": 2}}, "parameters", "from 0"),
        ({"parameters": {"source": "generator", "count": 5, "colour": "red"}}, "parameters", "Unknown for source"),
        ({"parameters": {"source": "ftp"}}, "parameters", "'source'"),
        ({"parameters": [1, 2]}, "parameters", "'source'"),
        ({"misfire_policy": "sometimes"}, "misfire_policy", "not a valid choice"),
        ({"enabled": "yes"}, "enabled", "valid boolean"),
    ],
)
def test_invalid_fields_are_a_400_naming_them(client, owner, churn, changes, field, fragment):
    response = client.post("/api/scheduled", body(**changes), format="json", **owner.headers)

    details = assert_error(response, 400, "validation_error")["details"]
    assert list(details) == [field] and fragment in str(details[field])
    assert not ScheduledRun.objects.exists()


def test_invalid_rows_are_reported_by_index_and_field(client, owner, churn):
    rows = churn_rows(3)
    rows[1]["tenure_months"] = "long"

    response = client.post(
        "/api/scheduled", body(parameters={"source": "rows", "rows": rows}), format="json", **owner.headers
    )

    details = assert_error(response, 400, "validation_error")["details"]
    assert details["parameters"]["rows"] == {"1": {"tenure_months": "Must be a number."}}


def test_list_filters_and_paginates(client, owner, make_run, churn, train):
    train("anomaly")
    anomaly_rows = model_rows("anomaly", 2)
    make_run(owner, name="a", cron="0 * * * *")
    make_run(owner, name="b", enabled=False)
    make_run(owner, name="c", model_slug="anomaly", parameters={"source": "rows", "rows": anomaly_rows})

    everything = client.get("/api/scheduled?limit=2", **owner.headers).json()
    churn_only = client.get("/api/scheduled?model_name=churn", **owner.headers).json()
    disabled = client.get("/api/scheduled?enabled=false", **owner.headers).json()
    page_two = client.get("/api/scheduled?limit=2&offset=2", **owner.headers).json()

    assert everything["count"] == 3 and [r["name"] for r in everything["results"]] == ["c", "b"]
    assert [r["name"] for r in page_two["results"]] == ["a"]
    assert [r["name"] for r in churn_only["results"]] == ["b", "a"]
    assert [r["name"] for r in disabled["results"]] == ["b"]
    assert everything["results"][0]["parameters"] == {"source": "rows", "row_count": 2}


def test_listing_costs_the_same_few_queries_for_any_number_of_runs(
    client, owner, make_run, churn, django_assert_num_queries
):
    for name in "abcdefgh":
        run = make_run(owner, name=name, cron="* * * * *")
        scheduled_run_fire(run_id=run.pk, now=T0 + timedelta(minutes=1, seconds=1))
    client.get("/api/me", **owner.headers)  # the key's first use of the minute records it: not this test's business

    # count, runs with owner, model and last execution joined (the verified key is remembered)
    with django_assert_num_queries(2):
        response = client.get("/api/scheduled", **owner.headers)

    assert response.status_code == 200 and response.json()["count"] == 8
    assert {r["last_status"] for r in response.json()["results"]} == {"succeeded"}


def test_read_change_and_delete(client, owner, make_run, churn):
    run = make_run(owner, cron="*/5 * * * *")

    read = client.get(f"/api/scheduled/{run.pk}/", **owner.headers)
    patched = client.patch(
        f"/api/scheduled/{run.pk}", {"schedule": "0 6 * * 1-5", "enabled": False}, format="json", **owner.headers
    )
    refused = client.patch(f"/api/scheduled/{run.pk}", {"schedule": "0 0 30 2 *"}, format="json", **owner.headers)
    after_refusal = client.get(f"/api/scheduled/{run.pk}", **owner.headers).json()
    deleted = client.delete(f"/api/scheduled/{run.pk}", **owner.headers)
    gone = client.get(f"/api/scheduled/{run.pk}", **owner.headers)

    assert read.status_code == 200 and read.json()["parameters"]["rows"] == run.parameters["rows"]
    assert patched.status_code == 200, patched.content
    assert patched.json()["schedule"] == "0 6 * * 1-5" and patched.json()["enabled"] is False
    assert patched.json()["next_run_at"] is None and len(patched.json()["next_runs"]) == 5
    assert "day of month" in assert_error(refused, 400, "validation_error")["details"]["schedule"][0]
    assert after_refusal["schedule"] == "0 6 * * 1-5"
    assert deleted.status_code == 204
    assert_error(gone, 404, "not_found")


def test_put_needs_every_field(client, owner, make_run, churn):
    run = make_run(owner)

    partial = client.put(f"/api/scheduled/{run.pk}", {"schedule": "@daily"}, format="json", **owner.headers)
    full = client.put(
        f"/api/scheduled/{run.pk}",
        body(name="replaced", misfire_policy="skip", enabled=True),
        format="json",
        **owner.headers,
    )

    missing = assert_error(partial, 400, "validation_error")["details"]
    assert set(missing) == {"name", "model_name", "timezone", "parameters", "misfire_policy", "enabled"}
    assert full.status_code == 200 and full.json()["name"] == "replaced" and full.json()["misfire_policy"] == "skip"


def test_trigger_answers_with_the_pending_execution_and_executions_list_it(client, owner, make_run, churn):
    run = make_run(owner)

    triggered = client.post(
        f"/api/scheduled/{run.pk}/trigger", format="json", HTTP_X_CORRELATION_ID="try-it-now", **owner.headers
    )
    execution_id = triggered.json()["id"]
    from scheduling.tasks import run_execution

    run_execution(execution_id)  # the worker's part
    listed = client.get(f"/api/scheduled/{run.pk}/executions", **owner.headers).json()
    one = client.get(f"/api/scheduled/{run.pk}/executions/{execution_id}", **owner.headers).json()
    run_now = client.get(f"/api/scheduled/{run.pk}", **owner.headers).json()

    assert triggered.status_code == 202
    assert triggered.json()["status"] == "pending" and triggered.json()["trigger"] == "manual"
    assert triggered.json()["correlation_id"] == "try-it-now" and triggered.json()["slot"] is None
    assert listed["count"] == 1 and listed["results"][0]["id"] == execution_id
    assert one["status"] == "succeeded" and one["rows_scored"] == 3 and one["model_version"] == 1
    assert one["duration_seconds"] >= 0 and one["triggered_by"] == "olivia-owner"
    assert run_now["last_execution_id"] == execution_id and run_now["last_status"] == "succeeded"


def test_executions_are_listed_newest_first_with_their_lag_and_filters(
    client, owner, make_run, churn, django_assert_num_queries
):
    run = make_run(owner, cron="* * * * *")
    for minute in (1, 2, 3):
        scheduled_run_fire(run_id=run.pk, now=T0 + timedelta(minutes=minute, seconds=2))
    ScheduledRunExecution.objects.filter(slot=T0 + timedelta(minutes=2)).update(status="failed")
    client.get("/api/me", **owner.headers)

    # the run, count, executions with their version and user joined (the key is remembered)
    with django_assert_num_queries(3):
        listed = client.get(f"/api/scheduled/{run.pk}/executions", **owner.headers).json()
    failed = client.get(f"/api/scheduled/{run.pk}/executions?status=failed", **owner.headers).json()
    bad_filter = client.get(f"/api/scheduled/{run.pk}/executions?status=exploded", **owner.headers)

    assert [datetime.fromisoformat(e["slot"]).minute for e in listed["results"]] == [3, 2, 1]
    assert listed["results"][0]["trigger"] == "schedule" and listed["results"][0]["lag_seconds"] > 0
    assert failed["count"] == 1
    assert_error(bad_filter, 400, "validation_error")


def test_the_endpoints_are_in_the_openapi_schema(client):
    schema = client.get("/api/schema/?format=json").json()

    assert {
        "/api/scheduled",
        "/api/scheduled/{run_id}",
        "/api/scheduled/{run_id}/trigger",
        "/api/scheduled/{run_id}/executions",
        "/api/scheduled/{run_id}/executions/{execution_id}",
    } <= set(schema["paths"])
    assert set(schema["paths"]["/api/scheduled/{run_id}"]) >= {"get", "put", "patch", "delete"}
