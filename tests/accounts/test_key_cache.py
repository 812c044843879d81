"""Verified keys are remembered per process, and forgotten everywhere as soon as anything changes."""

from __future__ import annotations

import pytest

from accounts.roles import Role, Tier
from accounts.services import api_key_revoke
from tests.live import live_server, service_env


@pytest.mark.django_db
def test_a_known_key_costs_no_query(client, viewer, django_assert_num_queries):
    assert client.get("/api/me", **viewer.headers).status_code == 200

    with django_assert_num_queries(0):
        response = client.get("/api/me", **viewer.headers)

    assert response.status_code == 200 and response.json()["role"] == Role.VIEWER


@pytest.mark.django_db
@pytest.mark.parametrize("per_ip_limit", [(6000, 60), None], ids=["read-with-the-ip-count", "read-alone"])
def test_a_role_changed_in_the_database_applies_to_the_next_request(client, make_caller, settings, per_ip_limit):
    """The key generation is read with the per-IP counter, or on its own when that limit is off."""
    settings.RATE_LIMIT_PER_IP = per_ip_limit
    caller = make_caller(Role.PREDICTOR)
    assert client.get("/api/me", **caller.headers).json()["role"] == Role.PREDICTOR

    caller.api_key.role = Role.VIEWER
    caller.api_key.save()

    assert client.get("/api/me", **caller.headers).json()["role"] == Role.VIEWER


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_every_server_process_forgets_a_revoked_key_at_once(make_caller):
    """Two gunicorn processes have verified the key; it is revoked from a third process."""
    caller = make_caller(Role.VIEWER, tier=Tier.UNLIMITED)
    headers = {"X-API-Key": caller.raw_key}

    with live_server(service_env()) as one, live_server(service_env()) as two:
        before = [server.call("GET", "/api/me", headers).status for server in (one, two, one, two)]
        api_key_revoke(api_key=caller.api_key)
        after = [server.call("GET", "/api/me", headers) for server in (one, two)]

    assert before == [200, 200, 200, 200]
    assert [answer.status for answer in after] == [401, 401]
    assert {answer.body["error"] for answer in after} == {"revoked_api_key"}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_deactivated_user_is_refused_by_a_server_that_knew_the_key(make_caller):
    caller = make_caller(Role.VIEWER, tier=Tier.UNLIMITED)
    headers = {"X-API-Key": caller.raw_key}

    with live_server(service_env()) as server:
        assert server.call("GET", "/api/me", headers).status == 200
        user = caller.api_key.user
        user.is_active = False
        user.save()
        answer = server.call("GET", "/api/me", headers)

    assert answer.status == 401 and answer.body["error"] == "inactive_user"
