"""The correlation id of the work in progress: a request, or a Celery task a request started.

Held in a context variable so that log lines, error bodies and outgoing tasks can read it
without passing it through every call.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Correlation-ID"
# Accept the ids common tracing systems send (UUIDs, W3C trace ids, ULIDs, "req-123"), nothing
# that could smuggle separators or markup into logs and headers.
_WELL_FORMED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")

_current: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def is_well_formed(value: str | None) -> bool:
    return bool(value) and _WELL_FORMED.match(value) is not None


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def get_correlation_id() -> str | None:
    return _current.get()


def set_correlation_id(value: str | None):
    """Set the current id; returns a token for :func:`reset_correlation_id`."""
    return _current.set(value)


def reset_correlation_id(token) -> None:
    _current.reset(token)
