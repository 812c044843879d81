"""The embedded setup's shared cache: Django's file cache with atomic counters.

Django's FileBasedCache implements ``add`` and ``incr`` as read-then-write, so two processes
counting the same rate limit at once lose increments. Holding an exclusive ``flock`` around
them makes each one atomic across every process on the machine, which is all the embedded
setup spans (production uses Redis, whose INCR is atomic by itself).

``incr`` rewrites the entry with the default timeout, so settings.py gives this cache a default
timeout of a day: longer than any rate-limit window, which must not expire early.
"""

from __future__ import annotations

import fcntl
import functools
import os
from contextlib import contextmanager
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.commands.core import Script


class LockingFileBasedCache(FileBasedCache):
    @contextmanager
    def _exclusive(self):
        os.makedirs(self._dir, exist_ok=True)
        with open(os.path.join(self._dir, ".counters.lock"), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        with self._exclusive():
            return super().add(key, value, timeout=timeout, version=version)

    def incr(self, key, delta=1, version=None):
        with self._exclusive():
            return super().incr(key, delta, version=version)


class _ReusingRedisCacheClient(RedisCacheClient):
    """Django's Redis client builds a new ``redis.Redis`` object for every operation (~70 us
    here, as much as the round trip itself); this one builds one per connection pool and
    reuses it. redis-py clients are thread-safe: each command takes a pooled connection."""

    @functools.cached_property
    def _clients(self) -> dict[int, Any]:
        return {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = super().get_client(key, write=write)
        return client


class ReusingRedisCache(RedisCache):
    """Django's RedisCache with the reusing client above; chosen by settings for redis:// URLs."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ReusingRedisCacheClient


# INCRBY, and EXPIRE when the counter was just created, then GET of a second key if one is
# given: atomic, one round trip, any Redis.
_INCREMENT_SCRIPT = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if value == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if #KEYS > 1 then return {value, redis.call('GET', KEYS[2])} end
return {value}
"""


def cache_increment(key: str, amount: int = 1, *, timeout: int) -> int:
    """Add ``amount`` to a shared counter, creating it with ``timeout``; returns the new value.

    Atomic wherever the cache's add and incr are (Redis, and LockingFileBasedCache above).
    On Redis it runs as one script (EVALSHA, the script body is sent once per connection
    pool): Django's own incr takes two round trips (EXISTS, INCRBY) plus an ADD for a new
    counter, and this runs on every request for rate limits.
    """
    return cache_increment_and_get(key, amount, timeout=timeout)[0]


def cache_increment_and_get(key: str, amount: int = 1, *, timeout: int, read_key: str | None = None) -> tuple[int, Any]:
    """``cache_increment``, and the value under ``read_key`` (None if absent), in one round trip.

    For what every request must both count and read (a rate limit and the API-key generation).
    """
    cache = caches["default"]  # the backend itself: ``django.core.cache.cache`` is a proxy
    if isinstance(cache, RedisCache):
        keys = [cache.make_and_validate_key(name) for name in (key, read_key) if name is not None]
        count, *read = _increment_script(cache)(keys=keys, args=[amount, timeout])
        raw = read[0] if read else None
        return int(count), None if raw is None else cache._cache._serializer.loads(raw)
    return _file_cache_increment(cache, key, amount, timeout), None if read_key is None else cache.get(read_key)


def _file_cache_increment(cache, key: str, amount: int, timeout: int) -> int:
    try:
        return cache.incr(key, amount)
    except ValueError:  # no counter yet
        if cache.add(key, amount, timeout=timeout):
            return amount
        return cache.incr(key, amount)  # another process created it first


@functools.cache
def _increment_script(cache: RedisCache) -> Script:
    """The increment script, bound to the cache's write client; redis-py runs it by its sha."""
    return cache._cache.get_client(write=True).register_script(_INCREMENT_SCRIPT)
