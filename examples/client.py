"""A small client for the model operations service, using only the Python standard library.

Configuration comes from two environment variables:

    MODELOPS_API_KEY   the API key, sent as ``X-API-Key`` (required for authenticated calls)
    MODELOPS_URL       the service's base URL (default http://127.0.0.1:8000)

Run it to print who you are and whether the service is ready:

    MODELOPS_API_KEY=<key> python examples/client.py

Use it from your own code:

    from client import ModelOpsClient, ModelOpsError

    client = ModelOpsClient()
    try:
        me = client.get("/api/me")
    except ModelOpsError as exc:
        print(exc.status_code, exc.error, exc.message, exc.correlation_id)
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"
# Long enough for POST /api/health/worker, whose server-side wait is at most 30 s.
DEFAULT_TIMEOUT_SECONDS = 35.0


class ModelOpsError(Exception):
    """An error answer from the service, or no answer at all.

    ``error`` is the machine-readable code (e.g. ``validation_error``, ``throttled``),
    ``message`` the human-readable text, ``correlation_id`` the id to quote when reporting the
    problem, ``details`` the per-field errors when the input was invalid, ``retry_after`` the
    seconds to wait after a 429 (from the Retry-After header).
    """

    def __init__(
        self,
        *,
        status_code: int | None,
        error: str,
        message: str,
        correlation_id: str | None = None,
        details: Any = None,
        retry_after: int | None = None,
    ):
        super().__init__(f"{status_code or 'no response'} {error}: {message} (correlation id {correlation_id})")
        self.status_code = status_code
        self.error = error
        self.message = message
        self.correlation_id = correlation_id
        self.details = details
        self.retry_after = retry_after


class ModelOpsClient:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ):
        self.base_url = (base_url or os.environ.get("MODELOPS_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("MODELOPS_API_KEY")
        self.timeout = timeout

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, body=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        correlation_id: str | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer; raise ModelOpsError on any error.

        ``correlation_id`` is sent as ``X-Correlation-ID``; the service keeps a well-formed id
        (letters, digits, ``.``, ``_``, ``:``, ``-``; up to 128 characters) and makes one otherwise.
        """
        url = self.base_url + path
        data = None
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        if correlation_id:
            headers["X-Correlation-ID"] = correlation_id
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _error_from_response(exc) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ModelOpsError(
                status_code=None, error="connection_failed", message=f"{method} {url} failed: {reason}"
            ) from None
        return json.loads(payload) if payload else None


def predict(client: ModelOpsClient, slug: str, features: dict[str, Any], entity_id: str = "") -> dict[str, Any]:
    """One prediction; the answer holds prediction, version, prediction_id and correlation_id."""
    return client.post(f"/api/{slug}", {"features": features, "entity_id": entity_id})


def predict_batch(client: ModelOpsClient, slug: str, rows: list[dict[str, Any]], partial: bool = False) -> dict:
    """Up to 10,000 rows of features at once, answered in order."""
    return client.post(f"/api/{slug}/batch", {"rows": [{"features": row} for row in rows], "partial": partial})


def _error_from_response(exc: urllib.error.HTTPError) -> ModelOpsError:
    """Turn an HTTP error answer into ModelOpsError, from the error body when there is one."""
    raw = exc.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    retry_after = exc.headers.get("Retry-After")
    correlation_id = exc.headers.get("X-Correlation-ID")
    if not isinstance(body, dict) or "error" not in body:
        # Not from the service itself (e.g. a proxy in between): keep what there is.
        text = raw.decode("utf-8", "replace").strip()[:200] or exc.reason
        return ModelOpsError(status_code=exc.code, error="http_error", message=text, correlation_id=correlation_id)
    return ModelOpsError(
        status_code=body.get("status_code", exc.code),
        error=body["error"],
        message=body.get("message", ""),
        correlation_id=body.get("correlation_id") or correlation_id,
        details=body.get("details"),
        retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
    )


def main() -> int:
    client = ModelOpsClient()
    if not client.api_key:
        print("Set MODELOPS_API_KEY to an API key (make run prints one).", file=sys.stderr)
        return 2
    try:
        print("GET /api/me")
        print(json.dumps(client.get("/api/me"), indent=2))
        print("GET /api/health/ready")
        print(json.dumps(client.get("/api/health/ready"), indent=2))
        example = client.get("/api/models/churn/info")["schema"]["example_request"]["features"]
        print("POST /api/churn with the documented example")
        print(json.dumps(predict(client, "churn", example, entity_id="client-1042"), indent=2))
    except ModelOpsError as exc:
        print(f"Error {exc.status_code} {exc.error}: {exc.message}", file=sys.stderr)
        if exc.details:
            print(json.dumps(exc.details, indent=2), file=sys.stderr)
        print(f"Correlation id: {exc.correlation_id}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
