"""OpenAPI generation: every operation documents the error format for the errors it can give."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from accounts.throttling import is_rate_limit_exempt


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="Machine-readable code, e.g. `validation_error`.")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    status_code = serializers.IntegerField()
    correlation_id = serializers.CharField(help_text="Also in the X-Correlation-ID header; quote it in reports.")
    details = serializers.JSONField(required=False, help_text="Per-field errors, when the input was invalid.")


_COMMON_ERRORS = {
    "400": "Invalid input: malformed JSON, NaN/Infinity, too deeply nested, or failed validation.",
    "401": "No API key, or a malformed, unknown, revoked or expired one.",
    "403": "The key's role does not allow this operation.",
    "413": "Request body over the size limit.",
    "415": "Unsupported Content-Type.",
    "429": "Rate limit reached; retry after the Retry-After header's seconds.",
}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in _COMMON_ERRORS.items():
            if code in responses or not self._can_answer(code):
                continue
            responses[code] = self._get_response_for_code(
                OpenApiResponse(ErrorSerializer, description=description), code, direction=direction
            )
        return responses

    def get_auth(self):
        # Public endpoints (health, docs) need no key: say so instead of "ApiKeyAuth or None".
        return [] if self._is_public() else super().get_auth()

    def _is_public(self) -> bool:
        return all(type(permission).__name__ == "AllowAny" for permission in self.view.get_permissions())

    def _can_answer(self, code: str) -> bool:
        writes = self.method in {"POST", "PUT", "PATCH"}
        if code in {"401", "403"}:
            return not self._is_public()
        if code in {"400", "413", "415"}:
            return writes
        if code == "429":
            return not is_rate_limit_exempt(self.path)
        return True


def document_paths_without_trailing_slash(endpoints):
    """URL patterns accept `/path` and `/path/`; the document lists each operation once, as `/path`."""
    return [(path.rstrip("/") or "/", regex, method, callback) for path, regex, method, callback in endpoints]
