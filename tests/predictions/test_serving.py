"""The per-process serving registry under concurrent use (threaded servers, threaded workers)."""

from __future__ import annotations

import threading

import pytest

from history.models import PredictionRecord
from predictions.catalog import CATALOG
from predictions.services import Caller, predictions_make, version_promote
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


def test_a_job_pinned_to_a_version_keeps_it_after_a_promotion(train):
    first = train("churn")
    second = train("churn", seed=1)
    version_promote(version=second)
    row = CATALOG["churn"].example_row()

    pinned = predictions_make(
        slug="churn", rows=[row], entity_ids=["c1"], caller=Caller("bulk", "corr"), version_id=first.pk
    )
    active = predictions_make(slug="churn", rows=[row], entity_ids=["c1"], caller=Caller("api", "corr"))

    assert (pinned.version_number, active.version_number) == (first.number, second.number)
    recorded = PredictionRecord.objects.get(pk=pinned.prediction_ids[0])
    assert recorded.version_id == first.pk


def test_a_pinned_version_whose_artifact_was_tampered_with_is_refused(train, settings):
    first = train("churn")
    version_promote(version=train("churn", seed=1))
    (settings.ARTIFACT_ROOT / first.artifact_path).write_bytes(b"not the model")
    registry.forget()

    with pytest.raises(ModelUnavailable, match="cannot be loaded"):
        registry.get_version("churn", first.pk)
