"""Who may do what: the access matrix over keys and roles, answered in the error format."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.roles import Role

pytestmark = pytest.mark.django_db

ERROR_FIELDS = {"error", "message", "status_code", "correlation_id"}


def assert_error(response, status_code: int, error: str | None = None) -> dict:
    assert response.status_code == status_code, response.content
    body = response.json()
    assert body.keys() >= ERROR_FIELDS
    assert body["status_code"] == status_code
    assert body["correlation_id"] == response["X-Correlation-ID"]
    if error is not None:
        assert body["error"] == error
    return body


@pytest.mark.parametrize(
    ("presented", "error"),
    [
        (None, "not_authenticated"),
        ("not-a-key", "malformed_api_key"),
        ("abcdefgh.0123456789abcdef0123456789abcdef", "unknown_api_key"),
    ],
)
def test_requests_without_a_usable_key_get_401(client, presented, error):
    headers = {"HTTP_X_API_KEY": presented} if presented else {}

    response = client.get("/api/me", **headers)

    assert_error(response, 401, error)
    assert response["WWW-Authenticate"].startswith("Api-Key")


def test_a_key_with_the_right_prefix_but_wrong_secret_is_unknown(client, viewer):
    forged = viewer.api_key.prefix + "." + "x" * 32

    assert_error(client.get("/api/me", HTTP_X_API_KEY=forged), 401, "unknown_api_key")


def test_revoked_key_is_refused_on_the_very_next_request(client, admin_caller, viewer):
    assert client.get("/api/me", **viewer.headers).status_code == 200

    revoke = client.delete(f"/api/keys/{viewer.api_key.prefix}", **admin_caller.headers)

    assert revoke.status_code == 200 and revoke.json()["revoked"] is True
    assert_error(client.get("/api/me", **viewer.headers), 401, "revoked_api_key")


def test_expired_key_is_refused(client, make_caller):
    expired = make_caller(Role.PREDICTOR, expiry_date=timezone.now() - timedelta(seconds=1))

    body = assert_error(client.get("/api/me", **expired.headers), 401, "expired_api_key")
    assert "expired" in body["message"]


def test_key_of_a_deactivated_user_is_refused(client, viewer):
    viewer.api_key.user.is_active = False
    viewer.api_key.user.save()

    assert_error(client.get("/api/me", **viewer.headers), 401, "inactive_user")


def test_authorization_header_is_accepted_too(client, viewer):
    response = client.get("/api/me", HTTP_AUTHORIZATION=f"Api-Key {viewer.raw_key}")

    assert response.status_code == 200
    assert response.json()["authenticated_by"] == "api_key"


@pytest.mark.parametrize("role", list(Role))
def test_every_role_reads_its_identity(client, make_caller, role):
    caller = make_caller(role)

    response = client.get("/api/me/", **caller.headers)

    assert response.status_code == 200
    assert response.json()["role"] == role
    assert response.json()["api_key"]["prefix"] == caller.api_key.prefix


@pytest.mark.parametrize(
    ("role", "read_status", "write_status"),
    [
        (Role.VIEWER, 403, 403),
        (Role.PREDICTOR, 403, 403),
        (Role.OPERATOR, 403, 403),
        (Role.ADMIN, 200, 201),
    ],
)
def test_only_admins_list_and_create_keys(client, make_caller, role, read_status, write_status):
    caller = make_caller(role)

    listing = client.get("/api/keys", **caller.headers)
    creation = client.post("/api/keys", {"name": "reporting app", "role": "viewer"}, format="json", **caller.headers)

    assert listing.status_code == read_status
    assert creation.status_code == write_status
    if write_status == 403:
        body = assert_error(creation, 403, "permission_denied")
        assert "'admin' role" in body["message"]
    else:
        assert creation.json()["key"].startswith(creation.json()["prefix"] + ".")


def test_created_key_is_shown_once_and_works(client, admin_caller):
    created = client.post(
        "/api/keys",
        {"name": "batch scorer", "role": "predictor", "tier": "premium"},
        format="json",
        **admin_caller.headers,
    ).json()

    me = client.get("/api/me", HTTP_X_API_KEY=created["key"]).json()
    shown_again = client.get(f"/api/keys/{created['prefix']}", **admin_caller.headers).json()

    assert me["role"] == "predictor" and me["api_key"]["tier"] == "premium"
    assert "key" not in shown_again
    assert shown_again["prefix"] == created["prefix"]


def test_a_key_cannot_have_more_rights_than_its_user(client, admin_caller, make_caller):
    operator = make_caller(Role.OPERATOR, username="olga")

    response = client.post(
        "/api/keys", {"name": "escalation", "role": "admin", "user": "olga"}, format="json", **admin_caller.headers
    )

    body = assert_error(response, 400, "validation_error")
    assert "role" in body["details"]
    assert not operator.api_key.user.api_keys.filter(role="admin").exists()


def test_key_creation_validates_fields(client, admin_caller):
    response = client.post(
        "/api/keys", {"name": "", "role": "superuser", "tier": "gold"}, format="json", **admin_caller.headers
    )

    body = assert_error(response, 400, "validation_error")
    assert {"name", "role", "tier"} <= body["details"].keys()


def test_session_login_works_for_the_browsable_api(client, django_user_model):
    django_user_model.objects.create_user("sam", password="a-long-test-password", role=Role.OPERATOR)
    client.login(username="sam", password="a-long-test-password")

    response = client.get("/api/me", HTTP_ACCEPT="application/json")
    page = client.get("/api/me", HTTP_ACCEPT="text/html")

    assert response.json() == {"username": "sam", "role": "operator", "authenticated_by": "session", "api_key": None}
    assert page.status_code == 200 and b"sam" in page.content
