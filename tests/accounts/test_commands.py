from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import APIKey, User
from accounts.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_api_key_prints_a_working_key_once(client):
    UserFactory(username="ops", role=Role.OPERATOR)

    raw_key = run(
        "create_api_key", "--user", "ops", "--role", "predictor", "--expires-in-days", "30", "--quiet"
    ).strip()

    me = client.get("/api/me", HTTP_X_API_KEY=raw_key).json()
    stored = APIKey.objects.get(prefix=raw_key.split(".")[0])
    assert me["role"] == "predictor" and me["api_key"]["expires_at"] is not None
    assert raw_key not in stored.hashed_key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody", "--role", "viewer"], "No user named 'nobody'"),
        (["--user", "ops", "--role", "admin"], "more rights than its user"),
        (["--user", "ops", "--role", "viewer", "--expires-in-days", "0"], "positive"),
    ],
)
def test_create_api_key_refuses_bad_requests(args, message):
    UserFactory(username="ops", role=Role.OPERATOR)

    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)


def test_bootstrap_creates_the_owner_login_and_key_once(client, settings, tmp_path):
    settings.VAR_DIR = tmp_path

    first = run("bootstrap", "--base-url", "http://127.0.0.1:8000")
    second = run("bootstrap")

    raw_key = re.search(r"api key: (\S+)", first).group(1)
    password = re.search(r"password: (\S+)", first).group(1)
    owner = User.objects.get(username="operator")
    assert owner.is_superuser and owner.check_password(password)
    assert client.get("/api/me", HTTP_X_API_KEY=raw_key).json()["role"] == "admin"
    assert raw_key in second and APIKey.objects.count() == 1
    assert "http://127.0.0.1:8000/api/docs/" in first
    assert (tmp_path / "first-run.txt").stat().st_mode & 0o077 == 0
