"""Every error, from any layer, answers in the one format and never leaks internals."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.accounts.test_access import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def raising_client():
    """A client that receives the 500 response instead of re-raising the view's exception."""
    return APIClient(raise_request_exception=False)


def post_raw(client, admin_caller, body: bytes | str, content_type: str = "application/json"):
    return client.generic("POST", "/api/keys", body, content_type=content_type, **admin_caller.headers)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"name": "a", ', "JSON parse error"),
        ('{"name": NaN, "role": "viewer"}', "NaN is not allowed"),
        ('{"name": Infinity, "role": "viewer"}', "Infinity is not allowed"),
        ('{"name": -Infinity, "role": "viewer"}', "Infinity is not allowed"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (b"\xff\xfe\x00garbage", "not valid utf-8"),
    ],
    ids=["truncated", "nan", "infinity", "minus-infinity", "deeply-nested", "bad-encoding"],
)
def test_malformed_json_is_a_400(client, admin_caller, body, fragment):
    response = post_raw(client, admin_caller, body)

    error = assert_error(response, 400, "parse_error")
    assert fragment in error["message"]


def test_wrong_content_type_is_a_415(client, admin_caller):
    assert_error(post_raw(client, admin_caller, "name=x", "text/plain"), 415, "unsupported_media_type")


def test_body_over_the_limit_is_a_413(client, admin_caller, settings):
    settings.MAX_REQUEST_BODY_BYTES = 2048

    response = post_raw(client, admin_caller, '{"name": "' + "x" * 4096 + '", "role": "viewer"}')

    body = assert_error(response, 413, "payload_too_large")
    assert "2048" in body["message"]


def test_unknown_url_is_a_json_404_even_in_debug(client, settings):
    settings.DEBUG = True

    body = assert_error(client.get("/api/no-such-thing"), 404, "not_found")
    assert "/api/no-such-thing" in body["message"]


def test_unsupported_method_is_a_405(client, admin_caller):
    response = client.delete("/api/me", **admin_caller.headers)

    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


@pytest.mark.urls("tests.urls")
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/test/crash", "/api/test/crash-django"])
def test_a_crash_is_a_500_without_internals(raising_client, settings, debug, path):
    settings.DEBUG = debug

    response = raising_client.get(path)

    body = assert_error(response, 500, "internal_error")
    assert b"secret" not in response.content and b"Traceback" not in response.content
    assert "correlation id" in body["message"]


def test_validation_errors_carry_field_details(client, admin_caller):
    response = client.post("/api/keys", {"role": "viewer"}, format="json", **admin_caller.headers)

    body = assert_error(response, 400, "validation_error")
    assert body["details"] == {"name": ["This field is required."]}


def test_a_well_formed_correlation_id_is_kept(client, viewer):
    response = client.get("/api/me", HTTP_X_CORRELATION_ID="checkout-7f3a.42", **viewer.headers)

    assert response["X-Correlation-ID"] == "checkout-7f3a.42"


@pytest.mark.parametrize("sent", ["", "has space", "<script>", "x" * 200, "ünïcode"])
def test_a_malformed_correlation_id_is_replaced(client, sent):
    response = client.get("/api/no-such-thing", HTTP_X_CORRELATION_ID=sent)

    assert response["X-Correlation-ID"] != sent
    assert len(response["X-Correlation-ID"]) == 32
    assert response.json()["correlation_id"] == response["X-Correlation-ID"]


def test_csrf_failure_for_a_session_user_is_in_the_error_format(django_user_model):
    django_user_model.objects.create_user("sam", password="a-long-test-password", role="admin")
    browser = APIClient(enforce_csrf_checks=True)
    browser.login(username="sam", password="a-long-test-password")

    response = browser.post("/api/keys", {"name": "x", "role": "viewer"}, format="json")

    assert_error(response, 403, "permission_denied")
