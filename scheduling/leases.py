"""The beat lease: of several beat processes, the one holding it sends the schedule.

Exactly once per slot never depends on this (scheduling/services.py): two beats that both send
still execute each slot once. The lease saves the work of sending and claiming every tick twice,
which on a busy machine showed as firing lag. A second beat stands by, loads the schedule like
the first, and takes over within 1.25 x ``SCHEDULING_BEAT_LEASE_SECONDS`` (the lease, then its
next poll) when the holder dies; a holder that stops cleanly hands the lease back, and the
standby takes it at its next poll. The new holder has the ticks lost in between re-sent at
once (``overdue_runs_resend``, asked at once; beat.py), so a failover delays slots by about the
lease but misses none.

Written here rather than taken from a library: celery-redbeat's lock comes with its own Redis
scheduler and single-beat supervises beat as a child process under a Redis lock; neither works
with django-celery-beat's DatabaseScheduler on the embedded setup, which has no Redis. A
conditional UPDATE of one row is the whole mechanism, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from scheduling.models import BeatLease

BEAT_LEASE = "beat"


def lease_acquire(*, name: str, holder: str, seconds: float, now: datetime | None = None) -> bool:
    """Renew the lease if ``holder`` has it, take it if it has expired: true if ``holder`` now holds it.

    Expiry is judged by this process's clock. A lease expiring further ahead than two lease
    lengths was written by a clock that has since been set back (or is far ahead): it counts as
    expired, so that no beat waits for it.
    """
    now = now or timezone.now()
    until = now + timedelta(seconds=seconds)
    renewed_or_taken = (
        BeatLease.objects.filter(name=name)
        .filter(Q(holder=holder) | Q(expires_at__lte=now) | Q(expires_at__gt=now + 2 * timedelta(seconds=seconds)))
        .update(
            holder=holder,
            expires_at=until,
            acquired_at=Case(When(holder=holder, then=F("acquired_at")), default=Value(now)),
        )
    )
    if renewed_or_taken:
        return True
    if BeatLease.objects.filter(name=name).exists():  # another holder's lease is current
        return False
    try:  # the first beat ever: the row does not exist yet
        with transaction.atomic():
            BeatLease.objects.create(name=name, holder=holder, expires_at=until, acquired_at=now)
    except IntegrityError:  # another beat created it first
        return False
    return True


def lease_release(*, name: str, holder: str) -> bool:
    """Hand the lease back (a beat stopping cleanly), so a standby takes it without waiting it out."""
    return bool(BeatLease.objects.filter(name=name, holder=holder).update(expires_at=timezone.now()))


def lease_holder(*, name: str) -> str:
    """Who holds the lease now, or an empty string."""
    lease = BeatLease.objects.filter(name=name, expires_at__gt=timezone.now()).first()
    return lease.holder if lease else ""
