"""Operators manage keys in the Django admin: the key is shown once, revocation sticks."""

from __future__ import annotations

import re

import pytest

from accounts.models import APIKey
from accounts.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_adding_a_key_in_the_admin_shows_it_once_and_it_works(admin_client, client):
    owner = UserFactory(username="reporting", role=Role.PREDICTOR)

    page = admin_client.post(
        "/admin/accounts/apikey/add/",
        {"name": "nightly scorer", "user": owner.pk, "role": "predictor", "tier": "standard"},
        follow=True,
    )

    raw_key = re.search(r"is ([A-Za-z0-9]{8}\.[A-Za-z0-9]{32})", page.content.decode()).group(1)
    assert client.get("/api/me", HTTP_X_API_KEY=raw_key).json()["username"] == "reporting"
    listing = admin_client.get("/admin/accounts/apikey/").content.decode()
    assert "nightly scorer" in listing and raw_key not in listing


def test_the_admin_refuses_a_key_with_more_rights_than_its_user(admin_client):
    owner = UserFactory(username="viewer-only", role=Role.VIEWER)

    page = admin_client.post(
        "/admin/accounts/apikey/add/", {"name": "too strong", "user": owner.pk, "role": "admin", "tier": "standard"}
    )

    assert page.status_code == 200
    assert "more rights than its user" in page.content.decode()
    assert not APIKey.objects.exists()


def test_revoke_action_refuses_the_key_on_the_next_request(admin_client, client, viewer):
    admin_client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke_selected", "_selected_action": [viewer.api_key.pk]},
    )

    assert client.get("/api/me", **viewer.headers).json()["error"] == "revoked_api_key"
    assert APIKey.objects.get(pk=viewer.api_key.pk).revoked_at is not None


def test_revoking_by_editing_the_key_stamps_the_time(admin_client, viewer):
    url = f"/admin/accounts/apikey/{viewer.api_key.pk}/change/"

    admin_client.post(url, {"name": "viewer key", "role": "viewer", "tier": "standard", "revoked": "on"})

    assert APIKey.objects.get(pk=viewer.api_key.pk).revoked_at is not None
    assert "revoked" in admin_client.get(url).content.decode().lower()
