from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_api_key.permissions import KeyParser

from accounts.selectors import KeyRejected, api_key_from_raw
from accounts.services import api_key_mark_used

_key_parser = KeyParser()


def raw_key_from_request(request) -> str | None:
    """The key from ``X-API-Key``, else from ``Authorization: Api-Key <key>``."""
    return _key_parser.get_from_header(request, "HTTP_X_API_KEY") or _key_parser.get_from_authorization(request)


class APIKeyAuthentication(BaseAuthentication):
    """Authenticate by API key: ``request.user`` is the key's user, ``request.auth`` the key.

    A revoked or expired key fails on the very next request, in every process: verified keys
    are remembered per process only as long as no key or user changes (accounts/key_cache.py).
    """

    def authenticate(self, request):
        raw_key = raw_key_from_request(request)
        if raw_key is None:
            return None
        try:
            api_key = api_key_from_raw(raw_key.strip(), known_generation=_generation_read_with_ip_count(request))
        except KeyRejected as rejected:
            raise AuthenticationFailed(str(rejected), code=rejected.code) from None
        api_key_mark_used(api_key=api_key)
        return api_key.user, api_key

    def authenticate_header(self, request) -> str:
        return 'Api-Key realm="api"'


def _generation_read_with_ip_count(request) -> int | None:
    """The API-key generation the per-IP limit read with its counter (None if it did not run)."""
    return getattr(getattr(request, "_request", request), "api_key_generation", None)
