"""Rate limits per API-key tier and per client IP, counted in the shared cache.

Written here rather than with DRF's SimpleRateThrottle because that one keeps a list of
timestamps and writes it back (read-modify-write): two processes serving the same key at once
overwrite each other's counts. A fixed-window counter with the cache's ``incr`` is atomic on
Redis, so every web process on every machine counts against the same budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from accounts.models import APIKey


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    count: int  # requests counted in this window, this one included
    reset_at: int  # unix time when the window ends

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def retry_after(self) -> int:
        return max(1, self.reset_at - int(time.time()))


def count_request(scope: str, ident: str, limit: int, period: int) -> RateLimitState:
    """Count one request in the current window of ``period`` seconds; return where it stands."""
    now = int(time.time())
    window_start = now - now % period
    key = f"ratelimit:{scope}:{ident}:{window_start}"
    try:
        count = cache.incr(key)
    except ValueError:  # first request of the window
        count = 1 if cache.add(key, 1, timeout=period + 1) else cache.incr(key)
    return RateLimitState(limit=limit, count=count, reset_at=window_start + period)


class _WindowThrottle(BaseThrottle):
    scope = ""

    def rate_and_ident(self, request) -> tuple[tuple[int, int] | None, str | None]:
        """The (limit, period) that applies to this request and whom it is counted for."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        rate, ident = self.rate_and_ident(request)
        if rate is None or ident is None:
            return True
        limit, period = rate
        self.state = count_request(self.scope, ident, limit, period)
        _remember_tightest(request, self.state)
        return self.state.allowed

    def wait(self) -> int:
        return self.state.retry_after


class ClientIPRateThrottle(_WindowThrottle):
    """Every request, with or without a key, counts against its client IP.

    ``get_ident`` honours REST_FRAMEWORK["NUM_PROXIES"] (TRUSTED_PROXY_COUNT): only the
    address seen by the last trusted proxy is used, never what the client wrote itself.
    """

    scope = "ip"

    def rate_and_ident(self, request):
        return settings.RATE_LIMIT_PER_IP, self.get_ident(request)


class KeyTierRateThrottle(_WindowThrottle):
    """Requests with an API key count against the key, at its tier's rate; browser sessions
    count against their user at RATE_LIMIT_SESSION_TIER."""

    scope = "key"

    def rate_and_ident(self, request):
        if isinstance(request.auth, APIKey):
            return settings.RATE_LIMIT_TIERS.get(request.auth.tier), f"key:{request.auth.prefix}"
        if request.user is not None and request.user.is_authenticated:
            return settings.RATE_LIMIT_TIERS[settings.RATE_LIMIT_SESSION_TIER], f"user:{request.user.pk}"
        return None, None


def _remember_tightest(request, state: RateLimitState) -> None:
    """Keep the state with the least headroom for the X-RateLimit-* headers."""
    django_request = request._request
    current = getattr(django_request, "rate_limit_state", None)
    if current is None or state.remaining < current.remaining:
        django_request.rate_limit_state = state
