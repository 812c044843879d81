from __future__ import annotations

import logging

from config.correlation import get_correlation_id


class CorrelationIdFilter(logging.Filter):
    """Stamp every log record with the correlation id of the request or task that wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Django logs a failed request's summary after the middleware has finished; the id
        # is still on the request it passes along.
        request = getattr(record, "request", None)
        record.correlation_id = get_correlation_id() or getattr(request, "correlation_id", None)
        return True
