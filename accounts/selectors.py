from __future__ import annotations

import re

from django.db.models import QuerySet

from accounts.key_cache import key_generation, verified_keys
from accounts.models import APIKey, User
from accounts.roles import Role

# Keys look like "<8-char prefix>.<32-char secret>" (djangorestframework-api-key's generator).
_KEY_SHAPE = re.compile(r"^[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}$")


class KeyRejected(Exception):
    """A presented API key cannot be used; ``code`` says why (for the error body)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def api_key_from_raw(raw_key: str, *, known_generation: int | None = None) -> APIKey:
    """The key a client presented, verified against its hash; raises KeyRejected otherwise.

    Keys verified before, under the current key generation, come from this process's memory
    (accounts/key_cache.py) without a query; their expiry and state are checked all the same.
    ``known_generation``: the key generation if this request has read it already.
    """
    if not _KEY_SHAPE.match(raw_key):
        raise KeyRejected("malformed_api_key", "The API key is malformed; expected <prefix>.<secret>.")
    generation = key_generation(known_generation)
    api_key = verified_keys.get(raw_key, generation)
    if api_key is None:
        api_key = _api_key_verified(raw_key)
        verified_keys.put(raw_key, generation, api_key)
    _check_usable(api_key)
    return api_key


def _api_key_verified(raw_key: str) -> APIKey:
    prefix = raw_key.partition(".")[0]
    api_key = APIKey.objects.select_related("user").filter(prefix=prefix).first()
    if api_key is None or not api_key.is_valid(raw_key):
        raise KeyRejected("unknown_api_key", "The API key is not recognised.")
    return api_key


def _check_usable(api_key: APIKey) -> None:
    if api_key.revoked:
        raise KeyRejected("revoked_api_key", "The API key has been revoked.")
    if api_key.has_expired:
        raise KeyRejected("expired_api_key", f"The API key expired at {api_key.expiry_date.isoformat()}.")
    if not api_key.user.is_active:
        raise KeyRejected("inactive_user", "The API key's user is deactivated.")


def api_keys_visible_to(user: User) -> QuerySet[APIKey]:
    """Admins see every key; everyone else sees their own."""
    keys = APIKey.objects.select_related("user").order_by("-created")
    if user.effective_role == Role.ADMIN:
        return keys
    return keys.filter(user=user)
