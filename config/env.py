"""Reading settings from environment variables, failing loudly with the variable's name.

django-environ does the parsing; this module only makes sure that a malformed value stops
start-up with a message that names the variable instead of a bare ``ValueError``.
"""

from __future__ import annotations

import re
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

_RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingError(ImproperlyConfigured):
    """A setting variable holds a value that cannot be used."""


def _parse(name: str, kind: str, default: Any, **kwargs: Any) -> Any:
    parse = getattr(env, kind)
    try:
        return parse(name, default=default, **kwargs)
    except ImproperlyConfigured:
        raise
    except Exception as exc:  # django-environ raises ValueError, TypeError, KeyError...
        raise SettingError(f"Environment variable {name} is malformed: {exc}") from None


def env_str(name: str, default: str) -> str:
    return _parse(name, "str", default)


def env_bool(name: str, default: bool) -> bool:
    raw = env.str(name, default="")
    if raw == "":
        return default
    if raw.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingError(f"Environment variable {name} must be true or false, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _parse(name, "int", default)
    if minimum is not None and value < minimum:
        raise SettingError(f"Environment variable {name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingError(f"Environment variable {name} must be <= {maximum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    return [item.strip() for item in _parse(name, "list", default) if item.strip()]


def env_db(name: str, default: str) -> dict[str, Any]:
    scheme = env.str(name, default=default).partition("://")[0]
    if scheme not in environ.Env.DB_SCHEMES:
        raise SettingError(f"Environment variable {name} has an unknown database scheme {scheme!r}")
    try:
        return env.db_url(name, default=default)
    except Exception as exc:
        raise SettingError(f"Environment variable {name} is not a usable database URL: {exc}") from None


def env_cache(name: str, default: str) -> dict[str, Any]:
    try:
        return env.cache_url(name, default=default)
    except Exception as exc:
        raise SettingError(f"Environment variable {name} is not a usable cache URL: {exc}") from None


def parse_rate(name: str, raw: str) -> tuple[int, int] | None:
    """Parse ``"600/min"`` into ``(600, 60)``; ``"none"`` means no limit."""
    if raw.strip().lower() in {"none", "unlimited", "off"}:
        return None
    match = _RATE_PATTERN.match(raw)
    if not match:
        raise SettingError(f"Environment variable {name} has rate {raw!r}; expected e.g. 600/min")
    return int(match.group(1)), _PERIOD_SECONDS[match.group(2)[0]]


def env_rate(name: str, default: str) -> tuple[int, int] | None:
    return parse_rate(name, env.str(name, default=default))


def env_rates(name: str, default: str) -> dict[str, tuple[int, int] | None]:
    """Parse ``"basic=60/min,standard=600/min"`` into a tier -> rate mapping."""
    rates: dict[str, tuple[int, int] | None] = {}
    for item in env.str(name, default=default).split(","):
        tier, sep, rate = item.partition("=")
        if not sep or not tier.strip():
            raise SettingError(f"Environment variable {name}: {item!r} is not tier=rate")
        rates[tier.strip()] = parse_rate(name, rate)
    return rates
