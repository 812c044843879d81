"""Request and error counts per model per hour, in the shared cache, for the health endpoint."""

from __future__ import annotations

import time

from django.core.cache import cache

from config.cache import cache_increment

HOUR = 3600


def _key(slug: str, kind: str, hour: int) -> str:
    return f"usage:{slug}:{kind}:{hour}"


def usage_count(*, slug: str, requests: int, errors: int) -> None:
    hour = int(time.time()) // HOUR
    cache_increment(_key(slug, "requests", hour), requests, timeout=2 * HOUR + 60)
    if errors:
        cache_increment(_key(slug, "errors", hour), errors, timeout=2 * HOUR + 60)


def usage_recent(*, slug: str) -> tuple[int, int]:
    """(requests, errors) over the current and the previous hour."""
    hour = int(time.time()) // HOUR
    keys = [_key(slug, kind, h) for kind in ("requests", "errors") for h in (hour, hour - 1)]
    counts = cache.get_many(keys)
    requests = sum(counts.get(k, 0) for k in keys[:2])
    errors = sum(counts.get(k, 0) for k in keys[2:])
    return requests, errors
