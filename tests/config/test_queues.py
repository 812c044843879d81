"""Each task goes to the queue its workers are started for (README: More Celery workers)."""

from __future__ import annotations

import pytest

from config.celery import app


def queue_of(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        # Scheduled runs never wait behind a bulk job's chunks on "predictions".
        ("scheduling.fire_runs", "scheduling"),
        ("scheduling.fire_run", "scheduling"),
        ("scheduling.run_execution", "scheduling"),
        ("scheduling.resend_overdue", "scheduling"),
        ("predictions.bulk_chunk", "predictions"),
        ("history.rollup_closed_hours", "default"),
    ],
)
def test_tasks_are_routed_to_their_queue(task_name, queue):
    assert queue_of(task_name) == queue


def test_every_routed_queue_is_declared_and_offered_by_the_worker_health_check():
    from config.health.views import QUEUES

    declared = {declared_queue.name for declared_queue in app.conf.task_queues}
    assert declared == set(QUEUES) == {"default", "scheduling", "predictions", "training"}
