"""Cross-cutting middleware: correlation ids, request logging, body limits, error bodies."""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from config.api.errors import INTERNAL_ERROR_MESSAGE, error_response
from config.correlation import (
    HEADER,
    is_well_formed,
    new_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)

request_logger = logging.getLogger("modelops.request")

# Paths that render HTML for people (the admin); their errors stay HTML pages.
_HTML_PREFIXES = ("/admin/",)


class CorrelationIdMiddleware:
    """Keep a well-formed ``X-Correlation-ID`` or make one; echo it; log one line per request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        received = request.headers.get(HEADER)
        correlation_id = received if is_well_formed(received) else new_correlation_id()
        request.correlation_id = correlation_id
        token = set_correlation_id(correlation_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[HEADER] = correlation_id
            request_logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            return response
        finally:
            reset_correlation_id(token)


class ErrorBodyMiddleware:
    """Rewrite any error response that is not yet in the error format into it.

    DRF views already answer in the format; this catches what Django produces on its own
    (unknown URL, 405 from plain views, the DEBUG technical pages, crashes in middleware), so
    that no HTML page, traceback or internal path ever reaches an API client.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or request.path.startswith(_HTML_PREFIXES):
            return response
        if _is_error_format(response):
            return response
        headers = {
            name: response[name] for name in ("Allow", "Retry-After", "WWW-Authenticate") if response.has_header(name)
        }
        return error_response(response.status_code, _message_for(request, response.status_code), headers=headers)


def _message_for(request: HttpRequest, status_code: int) -> str | None:
    if status_code == 404:
        return f"No endpoint at {request.path}."
    if status_code == 405:
        return f"Method {request.method} is not allowed on {request.path}."
    if status_code == 500:
        return INTERNAL_ERROR_MESSAGE
    return None  # the status's standard phrase


def _is_error_format(response: HttpResponse) -> bool:
    if getattr(response, "streaming", False):
        return False
    if not response.get("Content-Type", "").startswith("application/json"):
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and {"error", "message", "status_code", "correlation_id"} <= body.keys()


class RequestBodyLimitMiddleware:
    """Answer 413 before reading a body whose declared length is over the limit.

    DRF streams JSON bodies straight from the socket, bypassing Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE check, so the limit is enforced here (and again while
    parsing, see config/api/parsers.py, for bodies that understate their length).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "Content-Length is not a number.")
        limit = body_limit_for(request.content_type)
        if declared > limit:
            return error_response(413, f"Request body is {declared} bytes; the limit is {limit} bytes.")
        return self.get_response(request)


def body_limit_for(content_type: str | None) -> int:
    if content_type == "multipart/form-data":
        return settings.MAX_UPLOAD_BYTES
    return settings.MAX_REQUEST_BODY_BYTES


class RateLimitHeadersMiddleware:
    """Add ``X-RateLimit-Limit/Remaining/Reset`` for the tightest limit the request counted against."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        state = getattr(request, "rate_limit_state", None)
        if state is not None:
            response["X-RateLimit-Limit"] = str(state.limit)
            response["X-RateLimit-Remaining"] = str(state.remaining)
            response["X-RateLimit-Reset"] = str(state.reset_at)
        return response
