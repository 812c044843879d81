"""Request and error counts per model per hour, in the shared cache, for the health endpoint.

Each process adds up its counts in memory and writes them to the cache at most once a
second, so a prediction does not pay a cache round trip for a statistic that health reports
over an hour. A process that dies loses at most its last second of counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from django.core.cache import cache

from config.cache import cache_increment

logger = logging.getLogger(__name__)

HOUR = 3600
FLUSH_SECONDS = 1.0

_pending: Counter[str] = Counter()
_lock = threading.Lock()
_last_flush = 0.0


def _key(slug: str, kind: str, hour: int) -> str:
    return f"usage:{slug}:{kind}:{hour}"


def usage_count(*, slug: str, requests: int, errors: int) -> None:
    """Count requests and server-side failures; never fails the prediction it counts."""
    hour = int(time.time()) // HOUR
    with _lock:
        _pending[_key(slug, "requests", hour)] += requests
        if errors:
            _pending[_key(slug, "errors", hour)] += errors
    if errors or time.monotonic() - _last_flush >= FLUSH_SECONDS:
        usage_flush()


def usage_flush() -> None:
    global _last_flush
    with _lock:
        counts = dict(_pending)
        _pending.clear()
        _last_flush = time.monotonic()
    try:
        for key, amount in counts.items():
            cache_increment(key, amount, timeout=2 * HOUR + 60)
    except Exception:  # a cache outage must not turn answered predictions into 500s
        logger.warning("usage counters unavailable", exc_info=True)


def usage_recent(*, slug: str) -> tuple[int, int]:
    """(requests, errors) over the current and the previous hour, this process's included."""
    usage_flush()
    hour = int(time.time()) // HOUR
    keys = [_key(slug, kind, h) for kind in ("requests", "errors") for h in (hour, hour - 1)]
    counts = cache.get_many(keys)
    requests = sum(counts.get(k, 0) for k in keys[:2])
    errors = sum(counts.get(k, 0) for k in keys[2:])
    return requests, errors
