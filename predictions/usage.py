"""Request and error counts per model per hour, in the shared cache, for the health endpoint."""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

from config.cache import cache_increment

logger = logging.getLogger(__name__)

HOUR = 3600


def _key(slug: str, kind: str, hour: int) -> str:
    return f"usage:{slug}:{kind}:{hour}"


def usage_count(*, slug: str, requests: int, errors: int) -> None:
    """Count requests and server-side failures; never fails the prediction it counts."""
    hour = int(time.time()) // HOUR
    try:
        cache_increment(_key(slug, "requests", hour), requests, timeout=2 * HOUR + 60)
        if errors:
            cache_increment(_key(slug, "errors", hour), errors, timeout=2 * HOUR + 60)
    except Exception:  # a cache outage must not turn answered predictions into 500s
        logger.warning("usage counters unavailable for %s", slug, exc_info=True)


def usage_recent(*, slug: str) -> tuple[int, int]:
    """(requests, errors) over the current and the previous hour."""
    hour = int(time.time()) // HOUR
    keys = [_key(slug, kind, h) for kind in ("requests", "errors") for h in (hour, hour - 1)]
    counts = cache.get_many(keys)
    requests = sum(counts.get(k, 0) for k in keys[:2])
    errors = sum(counts.get(k, 0) for k in keys[2:])
    return requests, errors
