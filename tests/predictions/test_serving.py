"""The per-process serving registry under concurrent use (threaded servers, threaded workers)."""

from __future__ import annotations

import threading

import pytest

from predictions.serving import ModelUnavailable, registry

pytestmark = pytest.mark.django_db(transaction=True)


def test_threads_asking_at_once_on_a_cold_process_all_get_the_version(train):
    version = train("churn")
    registry.forget()
    start = threading.Barrier(8)
    served, failures = [], []

    def ask() -> None:
        start.wait()
        try:
            served.append(registry.get("churn").number)
        except ModelUnavailable as exc:
            failures.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert served == [version.number] * 8
