"""Verified API keys, remembered per process: a request with a known key costs no query.

A key presented for the first time is looked up and its hash checked (a query and a SHA-512,
about 1 ms); afterwards each process keeps the verified key in memory. What keeps that memory
honest is a shared *key generation*: a random token in the shared cache, replaced whenever
any API key or user is saved or deleted, from the API, the admin, a command or the shell.
Every request reads the token (one cache GET) and trusts only what it verified under the
same token, so a revoked key, a changed role or tier, or a deactivated user takes effect on
the very next request in every process on every machine.

A random token rather than a counter: a counter lost from the cache (eviction, a Redis
restart) would start again from zero and could meet an old value; a new token never does.
Expiry needs no token: it is checked on the remembered key at every request.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass

from django.core.cache import caches
from django.db import transaction

from accounts.models import APIKey

GENERATION_CACHE_KEY = "accounts:api-key-generation"
# Only verified keys are remembered, so the size is bounded by the keys that exist; the cap
# is a backstop for installations with very many keys (it forgets all and starts over).
MAX_REMEMBERED_KEYS = 10_000


def key_generation(known: int | None = None) -> int:
    """The current generation token; creates one if the cache has none (first use, eviction).

    ``known``: the token as already read in this request (the per-IP rate limit reads it in
    the same round trip as its counter); None reads it here.
    """
    if known is not None:
        return known
    cache = caches["default"]
    token = cache.get(GENERATION_CACHE_KEY)
    if token is None:
        cache.add(GENERATION_CACHE_KEY, _token(), timeout=None)
        token = cache.get(GENERATION_CACHE_KEY)
    return token


def _token() -> int:
    # An int rather than text: Django's Redis cache stores ints as they are, so a Lua script
    # can read the token along with a counter (config/cache.py), without unpickling.
    return secrets.randbits(62)


def key_generation_bump() -> None:
    """Make every process forget its verified keys: now, and again once the change commits.

    Now, so that this very process (and a test inside one transaction) stops trusting what
    it remembered; after the commit too, because in between another process may have
    reloaded the old row under the token set now.
    """
    _new_generation()
    transaction.on_commit(_new_generation)


def _new_generation() -> None:
    caches["default"].set(GENERATION_CACHE_KEY, _token(), timeout=None)


@dataclass(frozen=True)
class _Remembered:
    generation: int
    api_key: APIKey


class VerifiedKeys:
    """The per-process memory of verified keys, by a digest of the raw key."""

    def __init__(self) -> None:
        self._entries: dict[bytes, _Remembered] = {}
        self._lock = threading.Lock()

    def get(self, raw_key: str, generation: int) -> APIKey | None:
        entry = self._entries.get(_digest(raw_key))
        return entry.api_key if entry is not None and entry.generation == generation else None

    def put(self, raw_key: str, generation: int, api_key: APIKey) -> None:
        with self._lock:
            if len(self._entries) >= MAX_REMEMBERED_KEYS:
                self._entries.clear()
            self._entries[_digest(raw_key)] = _Remembered(generation, api_key)

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()


def _digest(raw_key: str) -> bytes:
    return hashlib.sha256(raw_key.encode()).digest()


verified_keys = VerifiedKeys()
