"""Bulk job callbacks: the address guard, the signature and one delivery attempt.

Signature (as Stripe's webhooks): ``X-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>``
is HMAC-SHA256, keyed with the API key's callback secret, over ``f"{t}.{body}"``. The receiver
recomputes it over the raw body and refuses a stale ``t`` (see examples/bulk_callback_receiver.py).

Address guard: the service would otherwise POST wherever a caller points it, inside the
network it runs in (SSRF). A callback host must resolve only to public addresses unless
BULK_CALLBACK_ALLOWED_HOSTS names the host, the address or its network. It is checked at
submission and again at every attempt, and the connection goes to the very address that was
checked, so a DNS answer that changes in between (DNS rebinding) cannot redirect it.
Redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import APIKey
from predictions.models import BulkCallbackSecret, BulkJob, CallbackDelivery, CallbackOutcome

SIGNATURE_HEADER = "X-Signature"
SECRET_PREFIX = "cbsec_"  # noqa: S105 (a label that makes leaked secrets recognisable, not a secret)
# What the delivery log keeps of a receiver's answer: enough to see what it said.
RESPONSE_EXCERPT_CHARS = 500
USER_AGENT = "modelops-bulk-callbacks/1.0"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(Exception):
    """The URL is not one the service may call (scheme, host, or where the host resolves)."""


@dataclass(frozen=True)
class CallbackTarget:
    scheme: str
    host: str
    port: int
    path: str
    address: IPAddress  # the checked address the connection goes to


def callback_target(url: str) -> CallbackTarget:
    """Check a callback URL and resolve it; raises CallbackRefused with the reason."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused("The callback URL must start with http:// or https://.")
    if parts.username or parts.password:
        raise CallbackRefused("The callback URL must not carry a user name or password.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise CallbackRefused("The callback URL has no host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackRefused("The callback URL has an invalid port.") from None
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise CallbackRefused(f"The callback host {host!r} cannot be resolved.") from None
    addresses = list(dict.fromkeys(_address(answer[4][0]) for answer in answers))
    for address in addresses:  # every one: the connection must not be able to pick a forbidden one
        kind = _non_public_kind(address)
        if kind and not _allowed(host, address):
            raise CallbackRefused(
                f"The callback host {host!r} resolves to {address} ({kind} address); such addresses are "
                "refused unless BULK_CALLBACK_ALLOWED_HOSTS names them."
            )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return CallbackTarget(parts.scheme, host, port, path, addresses[0])


def _address(text: str) -> IPAddress:
    """An address as the resolver gave it; an IPv4 address mapped into IPv6 as the IPv4 one."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _non_public_kind(address: IPAddress) -> str | None:
    for kind, flag in (  # the most specific name first: Python counts them all as private
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if flag:
            return kind
    return None if address.is_global else "non-public"


def _allowed(host: str, address: IPAddress) -> bool:
    for entry in settings.BULK_CALLBACK_ALLOWED_HOSTS:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:  # not an address or network: a host name
            if host.lower() == entry.lower().rstrip("."):
                return True
    return False


# --- Secrets and signatures ---------------------------------------------------------------------


@transaction.atomic
def callback_secret_create(*, api_key: APIKey) -> str:
    """A new secret for the key (the previous one stops signing); returned once, now."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    BulkCallbackSecret.objects.update_or_create(
        api_key=api_key, defaults={"secret": secret, "created_at": timezone.now()}
    )
    return secret


def callback_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# --- Delivery -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryResult:
    outcome: str
    retry_in: int | None = None  # seconds until the next attempt, if there is one


def callback_payload(*, job: BulkJob, event: str, attempt: int) -> dict:
    from predictions.bulk_selectors import bulk_job_summary

    return {
        "id": f"{job.pk}:{event}",  # the same on every attempt: receivers can drop repeats
        "type": f"bulk_job.{event}",
        "attempt": attempt,
        "sent_at": timezone.now().isoformat(),
        "job": bulk_job_summary(job),
    }


def callback_deliver(*, job_id: str, event: str, attempt: int) -> DeliveryResult:
    """One attempt: check the address again, POST the signed summary, log the attempt."""
    job = BulkJob.objects.select_related("model", "version").filter(pk=job_id).first()
    if job is None or not job.callback_url:
        return DeliveryResult(CallbackOutcome.FAILED)
    log = CallbackDelivery(job=job, event=event, attempt=attempt, url=job.callback_url)
    secret = BulkCallbackSecret.objects.filter(api_key_id=job.api_key_id).values_list("secret", flat=True).first()
    try:
        target = callback_target(job.callback_url)
    except CallbackRefused as refused:
        log.outcome, log.error = CallbackOutcome.REFUSED, str(refused)
        log.save()
        return DeliveryResult(CallbackOutcome.REFUSED)  # a policy answer: retrying cannot change it
    if secret is None:
        log.outcome, log.error = CallbackOutcome.FAILED, "The submitting API key has no callback secret any more."
        log.save()
        return DeliveryResult(CallbackOutcome.FAILED)
    body = orjson.dumps(callback_payload(job=job, event=event, attempt=attempt))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: callback_signature(secret=secret, timestamp=int(time.time()), body=body),
        "X-Bulk-Job-Id": str(job.pk),
        "X-Delivery-Attempt": str(attempt),
    }
    started = time.perf_counter()
    try:
        log.status_code, log.response_excerpt = _post(target, body, headers)
        delivered = 200 <= log.status_code < 300
        if not delivered:
            log.error = f"The receiver answered {log.status_code}."
    except (OSError, http.client.HTTPException) as exc:
        delivered = False
        log.error = f"{type(exc).__name__}: {exc}"[:1000]
    log.duration_ms = round((time.perf_counter() - started) * 1000, 2)
    log.outcome = CallbackOutcome.DELIVERED if delivered else CallbackOutcome.FAILED
    retry_in = None
    if not delivered and attempt < settings.BULK_CALLBACK_MAX_ATTEMPTS:
        retry_in = settings.BULK_CALLBACK_BACKOFF_SECONDS * 2 ** (attempt - 1)
        log.next_attempt_at = timezone.now() + timedelta(seconds=retry_in)
    log.save()
    return DeliveryResult(log.outcome, retry_in)


def _post(target: CallbackTarget, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(
        target.host, target.port, address=str(target.address), timeout=settings.BULK_CALLBACK_TIMEOUT_SECONDS
    )
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = response.read(RESPONSE_EXCERPT_CHARS * 4).decode("utf-8", "replace")[:RESPONSE_EXCERPT_CHARS]
        return response.status, excerpt
    finally:
        connection.close()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a checked address; the Host header still names the URL's host."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, with SNI and certificate checks against the URL's host."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
