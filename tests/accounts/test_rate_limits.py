"""Rate limits per key tier and per client IP, shared by every process through the cache."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from accounts.roles import Role, Tier
from accounts.throttling import count_request
from tests.accounts.test_access import assert_error
from tests.live import live_server, service_env

HOUR = 3600


def wait_for_a_fresh_window(period: int = HOUR, needed_seconds: int = 30) -> None:
    """Counters reset at window boundaries; don't let a boundary fall in the middle of a test."""
    left = period - int(time.time()) % period
    if left < needed_seconds:
        time.sleep(left + 1)


@pytest.mark.django_db
def test_a_keys_tier_limit_is_enforced_with_headers(client, make_caller, settings):
    settings.RATE_LIMIT_TIERS = {**settings.RATE_LIMIT_TIERS, Tier.BASIC: (3, HOUR)}
    wait_for_a_fresh_window()
    caller = make_caller(Role.VIEWER, tier=Tier.BASIC)

    answers = [client.get("/api/me", **caller.headers) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a["X-RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0]["X-RateLimit-Limit"] == "3"
    body = assert_error(answers[3], 429, "throttled")
    assert 0 < int(answers[3]["Retry-After"]) <= HOUR
    assert int(answers[3]["X-RateLimit-Reset"]) > time.time()
    assert "available in" in body["message"]


@pytest.mark.django_db
def test_keys_have_separate_budgets_and_unlimited_has_none(client, make_caller, settings):
    settings.RATE_LIMIT_TIERS = {**settings.RATE_LIMIT_TIERS, Tier.BASIC: (1, HOUR)}
    wait_for_a_fresh_window()
    first = make_caller(Role.VIEWER, tier=Tier.BASIC, username="first")
    second = make_caller(Role.VIEWER, tier=Tier.BASIC, username="second")
    unlimited = make_caller(Role.VIEWER, tier=Tier.UNLIMITED, username="batch")

    assert client.get("/api/me", **first.headers).status_code == 200
    assert client.get("/api/me", **first.headers).status_code == 429
    assert client.get("/api/me", **second.headers).status_code == 200
    assert all(client.get("/api/me", **unlimited.headers).status_code == 200 for _ in range(5))


@pytest.mark.django_db
def test_forged_forwarded_for_does_not_buy_a_fresh_budget(client, settings):
    settings.RATE_LIMIT_PER_IP = (3, HOUR)
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 0}
    wait_for_a_fresh_window()

    answers = [client.get("/api/me", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}") for n in range(4)]

    # Unauthenticated requests count too: a key guesser is limited like anyone else.
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert_error(answers[3], 429, "throttled")


@pytest.mark.django_db
def test_behind_one_trusted_proxy_only_the_address_it_saw_counts(client, settings):
    settings.RATE_LIMIT_PER_IP = (2, HOUR)
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    wait_for_a_fresh_window()

    def from_client(address: str, forged: str):
        return client.get("/api/me", HTTP_X_FORWARDED_FOR=f"{forged}, {address}").status_code

    same_client = [from_client("203.0.113.9", forged=f"198.51.100.{n}") for n in range(3)]
    another_client = from_client("203.0.113.10", forged="198.51.100.1")

    assert same_client == [401, 401, 429]
    assert another_client == 401


@pytest.mark.django_db
def test_health_probes_are_not_rate_limited_but_the_worker_check_is(client, settings):
    settings.RATE_LIMIT_PER_IP = (1, HOUR)
    wait_for_a_fresh_window()

    probes = [client.get(path).status_code for path in ["/api/health", "/api/health/ready"] * 3]
    guesses = [client.post("/api/health/worker", HTTP_X_API_KEY="bad").status_code for _ in range(2)]

    assert probes == [200] * 6
    assert guesses == [401, 429]


def _count_in_subprocess(count: int) -> None:
    from accounts.throttling import count_request

    for _ in range(count):
        count_request("concurrency-test", "one-client", 10**6, HOUR)


def test_counts_from_concurrent_processes_are_not_lost(settings):
    """The embedded file cache must count atomically, like Redis does."""
    wait_for_a_fresh_window()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_count_in_subprocess, args=(300,)) for _ in range(3)]

    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert count_request("concurrency-test", "one-client", 10**6, HOUR).count == 901


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_tier_limit_holds_across_two_server_processes(make_caller):
    """Two gunicorn processes, alternately serving one key, count against one budget."""
    wait_for_a_fresh_window()
    caller = make_caller(Role.VIEWER, tier=Tier.BASIC)
    env = service_env(RATE_LIMIT_TIERS="basic=4/hour,standard=600/min,premium=6000/min,unlimited=none")
    headers = {"X-API-Key": caller.raw_key}

    with live_server(env) as one, live_server(env) as two:
        answers = [server.call("GET", "/api/me", headers) for server in (one, two, one, two, one, two)]

    assert [a.status for a in answers] == [200, 200, 200, 200, 429, 429]
    assert [a.header("X-RateLimit-Remaining") for a in answers[:4]] == ["3", "2", "1", "0"]
    assert answers[4].body["error"] == "throttled" and int(answers[4].header("Retry-After")) > 0
