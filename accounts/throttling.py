"""Rate limits per API-key tier and per client IP, counted in the shared cache.

The per-IP limit is a middleware, so that it counts every request, including those that fail
authentication (key guessing) before DRF would reach its throttles. The per-key limit is a DRF
throttle, since it needs the authenticated key.

Written here rather than with DRF's SimpleRateThrottle because that one keeps a list of
timestamps and writes it back (read-modify-write): two processes serving the same key at once
overwrite each other's counts. A fixed-window counter with the cache's ``incr`` is atomic on
Redis, so every web process on every machine counts against the same budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from accounts.key_cache import GENERATION_CACHE_KEY
from accounts.models import APIKey
from config.api.errors import error_response
from config.cache import cache_increment_and_get

# Probes and scrapers call these all day from one address. Exact paths: other endpoints under
# /api/health (the worker check) take a key and are counted like any other.
RATE_LIMIT_EXEMPT_PATHS = frozenset(
    {"/api/health", "/api/health/", "/api/health/ready", "/api/health/ready/", "/metrics"}
)


def is_rate_limit_exempt(path: str) -> bool:
    return path in RATE_LIMIT_EXEMPT_PATHS or path.startswith("/static/")


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
    return count_request_and_read(scope, ident, limit, period)[0]


def count_request_and_read(
    scope: str, ident: str, limit: int, period: int, read_key: str | None = None
) -> tuple[RateLimitState, Any]:
    """``count_request``, and the shared value under ``read_key``, in one cache round trip."""
    now = int(time.time())
    window_start = now - now % period
    key = f"ratelimit:{scope}:{ident}:{window_start}"
    count, value = cache_increment_and_get(key, timeout=period + 1, read_key=read_key)
    return RateLimitState(limit=limit, count=count, reset_at=window_start + period), value


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
    django_request = getattr(request, "_request", request)
    current = getattr(django_request, "rate_limit_state", None)
    if current is None or state.remaining < current.remaining:
        django_request.rate_limit_state = state


class ClientIPRateLimitMiddleware:
    """Every request, with or without a key, counts against its client IP.

    The client IP honours REST_FRAMEWORK["NUM_PROXIES"] (TRUSTED_PROXY_COUNT): only the address
    the last trusted proxy saw is used, never what the client wrote itself in X-Forwarded-For.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self._ident = BaseThrottle()

    def __call__(self, request):
        rate = settings.RATE_LIMIT_PER_IP
        if rate is None or is_rate_limit_exempt(request.path):
            return self.get_response(request)
        # The API-key generation rides along: authentication needs it on every request with
        # a key (accounts/key_cache.py), and this saves it a round trip of its own.
        state, request.api_key_generation = count_request_and_read(
            "ip", self._ident.get_ident(request), *rate, read_key=GENERATION_CACHE_KEY
        )
        _remember_tightest(request, state)
        if not state.allowed:
            return error_response(
                429,
                f"Too many requests from your address; retry in {state.retry_after} s.",
                code="throttled",
                headers={"Retry-After": str(state.retry_after)},
            )
        return self.get_response(request)
