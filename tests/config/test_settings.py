"""Settings come from the environment; a malformed value stops start-up naming the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.live import ROOT

START_DJANGO = "import django; django.setup(); print('started')"
START_CELERY = (
    "import django; django.setup(); from config.celery import app; "
    "app.loader.import_default_modules(); app.finalize(auto=True); print('started')"
)


def start(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "VAR_DIR": str(ROOT / "var" / "settings-test"),
    }
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_defaults_start_the_embedded_setup():
    result = start(
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CACHES['default']['BACKEND'])"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "filesystem://",
        "config.cache.LockingFileBasedCache",
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "nosuchdb://x"),
        ("CACHE_URL", "locmem://"),
        ("CACHE_URL", "nosuchcache://x"),
        ("RATE_LIMIT_TIERS", "basic=lots"),
        ("RATE_LIMIT_TIERS", "standard=600/min,premium=6000/min,unlimited=none"),
        ("RATE_LIMIT_PER_IP", "100 per minute"),
        ("TRUSTED_PROXY_COUNT", "two"),
        ("TRUSTED_PROXY_COUNT", "-1"),
        ("MAX_REQUEST_BODY_BYTES", "10MB"),
        ("LOG_LEVEL", "LOUD"),
        ("RATE_LIMIT_SESSION_TIER", "gold"),
    ],
)
def test_a_malformed_value_stops_start_up_naming_the_variable(variable, value):
    result = start(START_DJANGO, **{variable: value})

    assert result.returncode != 0
    assert "started" not in result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line or "SettingError" in last_line
    assert variable in last_line


def test_redis_visibility_timeout_must_exceed_the_longest_task_time_limit():
    result = start(
        START_CELERY,
        CELERY_BROKER_URL="redis://127.0.0.1:6379/13",
        CELERY_VISIBILITY_TIMEOUT="600",
        CELERY_TASK_TIME_LIMIT="1800",
    )

    assert result.returncode != 0
    assert "CELERY_VISIBILITY_TIMEOUT (600s) must be larger" in result.stderr


def test_a_visibility_timeout_above_every_limit_starts():
    result = start(START_CELERY, CELERY_BROKER_URL="redis://127.0.0.1:6379/13", CELERY_VISIBILITY_TIMEOUT="10800")

    assert result.returncode == 0, result.stderr


def test_production_variables_pass_the_deployment_checklist():
    result = start(
        "import sys; from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])",
        DEBUG="false",
        SECRET_KEY="k" * 20 + "Zq8#x!p2@Lr5^w9&Tn1*Yb4$Hc7(Vm3)Gd6_Jf0+",
        ALLOWED_HOSTS="modelops.example.com",
        SECURE_SSL_REDIRECT="true",
        SESSION_COOKIE_SECURE="true",
        CSRF_COOKIE_SECURE="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
        SECURE_PROXY_SSL_HEADER="true",
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
