"""Date-times sent by clients, made safe for the database.

Python accepts UTC offsets up to ±23:59, PostgreSQL only up to ±15:59: a time such as
``2026-01-01T00:00:00+20:00`` is valid for Python and a database error for the query that
carries it. Every client-supplied time is therefore converted to UTC before it reaches a
query or a row (DRF's own DateTimeField already does this; these cover the rest).
"""

from __future__ import annotations

from datetime import UTC, datetime

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


def as_utc(value: datetime) -> datetime:
    """An aware ``value`` as the same instant in UTC; ValueError if that leaves the calendar
    (``0001-01-01T00:00+01:00`` is in year 0 in UTC)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("Out of range once converted to UTC.") from None


class UTCIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)  # with USE_TZ, a time without offset is read in TIME_ZONE
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return as_utc(parsed)
        except ValueError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """django-filter's ISO 8601 filter, with any offset converted to UTC before the query."""

    field_class = UTCIsoDateTimeField
