"""The one error format: ``{error, message, status_code, correlation_id[, details]}``.

Every layer answers through :func:`error_response`: DRF views (via :func:`exception_handler`),
Django's 400/403/404/500 handlers and the middleware that guards everything else.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from rest_framework import exceptions

from config.api.exceptions import PayloadTooLarge
from config.correlation import get_correlation_id

logger = logging.getLogger(__name__)

INTERNAL_ERROR_MESSAGE = "An internal error occurred. Quote the correlation id when reporting it."

# The machine-readable `error` code for statuses that reach us without a DRF exception.
_CODE_BY_STATUS = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def error_code_for_status(status_code: int) -> str:
    return _CODE_BY_STATUS.get(status_code, "client_error" if status_code < 500 else "server_error")


def error_body(status_code: int, message: str, *, code: str | None = None, details: Any = None) -> dict[str, Any]:
    body = {
        "error": code or error_code_for_status(status_code),
        "message": message,
        "status_code": status_code,
        "correlation_id": get_correlation_id(),
    }
    if details is not None:
        body["details"] = details
    return body


def error_response(
    status_code: int,
    message: str | None = None,
    *,
    code: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    message = message or HTTPStatus(status_code).phrase
    response = JsonResponse(error_body(status_code, message, code=code, details=details), status=status_code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _message_and_details(exc: exceptions.APIException) -> tuple[str, str | None, Any]:
    """Split a DRF exception into (message, code, details); field errors become details."""
    if isinstance(exc, exceptions.ValidationError):
        return "Invalid input.", "validation_error", exc.detail
    detail = exc.detail
    if isinstance(detail, (list, dict)):
        return str(exc.default_detail), exc.default_code, detail
    return str(detail), getattr(detail, "code", None) or exc.default_code, None


def _as_api_exception(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError("The request was malformed.")
    return None


def exception_handler(exc: Exception, context: dict) -> JsonResponse:
    """DRF's EXCEPTION_HANDLER: every exception a view raises becomes the error format.

    Unexpected exceptions are logged with their traceback and answered as a bare 500: no
    traceback, class name or path reaches the client, whatever DEBUG says.
    """
    api_exc = _as_api_exception(exc)
    if api_exc is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        return error_response(500, INTERNAL_ERROR_MESSAGE)
    # Imported here: rest_framework.views reads the throttle and authentication settings at
    # import time, and those modules use error_response from this one.
    from rest_framework.views import exception_handler as drf_exception_handler

    # DRF's own handler supplies WWW-Authenticate and Retry-After headers.
    drf_response = drf_exception_handler(api_exc, context)
    headers = {k: v for k, v in drf_response.headers.items() if k in {"WWW-Authenticate", "Retry-After"}}
    message, code, details = _message_and_details(api_exc)
    return error_response(api_exc.status_code, message, code=code, details=details, headers=headers)


# Django's handlers for errors raised outside DRF views (URL not found, CSRF, crashes).
def handler400(request, exception=None):
    return error_response(400, "The request was malformed.")


def handler403(request, exception=None):
    return error_response(403, "You do not have permission to perform this action.")


def handler404(request, exception=None):
    return error_response(404, f"No endpoint at {request.path}.")


def handler500(request):
    return error_response(500, INTERNAL_ERROR_MESSAGE)


def csrf_failure(request, reason=""):
    return error_response(403, "CSRF check failed. Send the CSRF token, or authenticate with an API key.")
