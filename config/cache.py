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
import os
from contextlib import contextmanager

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.filebased import FileBasedCache


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


# INCRBY, and EXPIRE when the counter was just created: atomic, one round trip, any Redis.
_INCREMENT_SCRIPT = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if value == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return value
"""


def cache_increment(key: str, amount: int = 1, *, timeout: int) -> int:
    """Add ``amount`` to a shared counter, creating it with ``timeout``; returns the new value.

    Atomic wherever the cache's add and incr are (Redis, and LockingFileBasedCache above).
    On Redis it runs as one script: Django's own incr takes two round trips (EXISTS, INCRBY)
    plus an ADD for a new counter, and this runs on every request for rate limits.
    """
    from django.core.cache import cache
    from django.core.cache.backends.redis import RedisCache

    if isinstance(cache, RedisCache):
        full_key = cache.make_and_validate_key(key)
        client = cache._cache.get_client(full_key, write=True)
        return int(client.eval(_INCREMENT_SCRIPT, 1, full_key, amount, timeout))
    try:
        return cache.incr(key, amount)
    except ValueError:  # no counter yet
        if cache.add(key, amount, timeout=timeout):
            return amount
        return cache.incr(key, amount)  # another process created it first
