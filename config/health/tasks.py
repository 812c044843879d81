from __future__ import annotations

from celery import shared_task

from config.correlation import get_correlation_id


@shared_task(bind=True, name="health.echo", time_limit=30)
def echo(self, queue: str) -> dict:
    """Answer a worker check: which worker ran it and the correlation id it received."""
    return {"worker": self.request.hostname, "queue": queue, "correlation_id": get_correlation_id()}
