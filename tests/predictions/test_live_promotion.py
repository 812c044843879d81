"""Every process serves a promoted version within a second, without a restart."""

from __future__ import annotations

import time

import pytest

from predictions.catalog import CATALOG
from tests.live import live_server, service_env


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_server_processes_switch_to_the_promoted_version_within_a_second(train, predictor, admin, settings):
    train("churn")
    train("churn", seed=1)
    env = service_env(ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT))
    body = {"features": CATALOG["churn"].example_row()}

    def served_version(server) -> int:
        answer = server.call("POST", "/api/churn", {"X-API-Key": predictor.raw_key}, body)
        assert answer.status == 200, answer.body
        return answer.body["version"]

    with live_server(env) as one, live_server(env) as two:
        before = [served_version(one), served_version(two)]
        promoted = one.call("POST", "/api/models/churn/promote", {"X-API-Key": admin.raw_key}, {"version": 2})
        promoted_at = time.monotonic()
        lag = {}
        while len(lag) < 2 and time.monotonic() - promoted_at < 5:
            for name, server in (("one", one), ("two", two)):
                if name not in lag and served_version(server) == 2:
                    lag[name] = time.monotonic() - promoted_at

    assert before == [1, 1] and promoted.status == 200
    assert set(lag) == {"one", "two"}
    assert max(lag.values()) < 1.0, lag
