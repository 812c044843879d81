"""A receiver for bulk job callbacks that verifies their signature (standard library only).

The service POSTs a JSON summary when a bulk job completes, fails or is cancelled, with

    X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with your secret>

The secret is your API key's callback secret: it is in the answer to your first job with a
``callback_url`` (``callback_secret``), or ``POST /api/bulk-predictions/callback-secret``
makes a new one. Run:

    MODELOPS_CALLBACK_SECRET=cbsec_... python examples/bulk_callback_receiver.py --port 9000

and submit jobs with ``"callback_url": "http://<this host>:9000/bulk-done"``. (The service
refuses private and loopback addresses unless its BULK_CALLBACK_ALLOWED_HOSTS setting names
them: set ``BULK_CALLBACK_ALLOWED_HOSTS=127.0.0.1`` to try this on one machine.)

Answer 2xx quickly; anything else, or no answer, is retried with exponential backoff. A
callback may arrive more than once: the payload's ``id`` is the same every time.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Refuse signatures older than this: a captured request cannot be replayed later.
TOLERANCE_SECONDS = 300


class BadSignature(Exception):
    pass


def verify_signature(*, secret: str, header: str | None, body: bytes, now: float | None = None) -> dict:
    """Return the payload if ``header`` signs ``body`` with ``secret`` recently; else raise."""
    if not header:
        raise BadSignature("no X-Signature header")
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
        received = fields["v1"]
    except (KeyError, ValueError):
        raise BadSignature("malformed X-Signature header") from None
    if abs((now or time.time()) - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature("signature too old (or the clocks disagree)")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, received):  # constant time: no timing hints
        raise BadSignature("signature does not match")
    return json.loads(body)


def handler_for(secret: str) -> type[BaseHTTPRequestHandler]:
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                payload = verify_signature(secret=secret, header=self.headers.get("X-Signature"), body=body)
            except BadSignature as refused:
                self.send_response(401)
                self.end_headers()
                print(f"refused: {refused}")
                return
            self.send_response(204)
            self.end_headers()
            if payload["id"] in seen:
                return  # a retry of something already handled
            seen.add(payload["id"])
            job = payload["job"]
            print(f"{payload['type']}: job {job['id']} {job['rows_done']} done, {job['rows_failed']} failed")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 (a receiver must be reachable)
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    secret = os.environ.get("MODELOPS_CALLBACK_SECRET")
    if not secret:
        raise SystemExit("Set MODELOPS_CALLBACK_SECRET to your key's callback secret.")
    server = ThreadingHTTPServer((args.host, args.port), handler_for(secret))
    print(f"listening on {args.host}:{args.port}")
    server.serve_forever()


if __name__ == "__main__":
    main()
