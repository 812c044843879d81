"""Who sees and changes which scheduled runs.

Operators see and change only their own runs; admins see and change every run; viewers and
predictors change nothing and read only runs of their own user: in practice, the read-only key
an operator makes for a dashboard. Someone else's run answers 404, as if it did not exist.
"""

from __future__ import annotations

import pytest

from accounts.roles import Role
from scheduling.models import ScheduledRun
from tests.accounts.test_access import assert_error

pytestmark = pytest.mark.django_db


_FIXTURES = {"owner's viewer key": "owner_viewer_key"}


@pytest.fixture
def persona_named(request, make_caller):
    """Each persona's key, made only when a test asks for it (hashing a key costs ~0.6 s)."""

    def get(name: str):
        if name == "predictor":
            return make_caller(Role.PREDICTOR, username="pia-predictor")
        return request.getfixturevalue(_FIXTURES.get(name, name))

    return get


@pytest.fixture
def owners_run(owner, make_run, catalog):
    return make_run(owner, name="owner's run")


# persona: (sees it in the list, GET, PATCH, trigger, executions, DELETE)
MATRIX = {
    "owner": (True, 200, 200, 202, 200, 204),
    "teammate": (False, 404, 404, 404, 404, 404),
    "outsider": (False, 404, 403, 403, 404, 403),
    "owner's viewer key": (True, 200, 403, 403, 200, 403),
    "predictor": (False, 404, 403, 403, 404, 403),
    "admin": (True, 200, 200, 202, 200, 204),
}


@pytest.mark.parametrize("persona", list(MATRIX))
def test_ownership_matrix(client, persona_named, owners_run, persona):
    caller = persona_named(persona)
    listed, read, change, trigger, executions, delete = MATRIX[persona]
    url = f"/api/scheduled/{owners_run.pk}"

    listing = client.get("/api/scheduled", **caller.headers).json()
    responses = [
        client.get(url, **caller.headers),
        client.patch(url, {"name": f"renamed by {persona}"}, format="json", **caller.headers),
        client.post(f"{url}/trigger", **caller.headers),
        client.get(f"{url}/executions", **caller.headers),
        client.delete(url, **caller.headers),
    ]

    assert (owners_run.pk in [r["id"] for r in listing["results"]]) is listed
    assert [r.status_code for r in responses] == [read, change, trigger, executions, delete]
    for response in responses:
        if response.status_code == 404:
            assert_error(response, 404, "not_found")  # the same answer as for a run that does not exist
        if response.status_code == 403:
            assert "'operator' role" in assert_error(response, 403, "permission_denied")["message"]
    still_named = ScheduledRun.objects.filter(pk=owners_run.pk, name="owner's run").exists()
    assert still_named is (change != 200 and delete != 204)


@pytest.mark.parametrize(("persona", "status"), [("owner", 201), ("teammate", 201), ("admin", 201), ("outsider", 403)])
def test_operators_and_admins_create_runs_that_they_own(client, persona_named, catalog, persona, status):
    caller = persona_named(persona)
    body = {"model_name": "churn", "schedule": "@daily", "parameters": {"source": "generator", "count": 1}}

    response = client.post("/api/scheduled", body, format="json", **caller.headers)

    assert response.status_code == status
    if status == 201:
        assert ScheduledRun.objects.get(pk=response.json()["id"]).owner == caller.api_key.user


def test_admins_list_every_run_and_can_filter_by_owner(client, owner, teammate, admin, make_run, catalog):
    make_run(owner, name="mine")
    make_run(teammate, name="theirs")

    everything = client.get("/api/scheduled", **admin.headers).json()
    theo = client.get("/api/scheduled?owner=theo-teammate", **admin.headers).json()
    own_only = client.get("/api/scheduled", **teammate.headers).json()

    assert everything["count"] == 2
    assert [r["name"] for r in theo["results"]] == ["theirs"]
    assert [r["name"] for r in own_only["results"]] == ["theirs"]


def test_without_a_key_nothing_is_visible(client, owners_run):
    assert_error(client.get("/api/scheduled"), 401, "not_authenticated")
    assert_error(client.get(f"/api/scheduled/{owners_run.pk}"), 401, "not_authenticated")
