"""Cron expressions: parsing, validation, and fire times in an IANA time zone. Pure Python, no Django.

The syntax is Vixie cron's five fields, ``minute hour day-of-month month day-of-week``:

- values are ASCII digits only (Arabic-Indic or full-width digits are refused, not read as numbers); months and
  weekdays also take three-letter English names (``jan``, ``mon``), in any case;
- each field is a comma-separated list of ``*``, ``n``, ``a-b``, ``*/s``, ``a-b/s`` or ``a/s``
  (``a`` to the field's maximum, every ``s``); ranges never wrap (``22-2`` is refused);
- day of week is 0-7, where 0 and 7 are both Sunday;
- when both day of month and day of week are restricted (neither starts with ``*``), a day
  matches if *either* matches (``0 9 1 * mon`` runs on the 1st and on every Monday), as in
  every Unix cron; otherwise both must match;
- ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``) and
  ``@hourly`` stand for their usual five fields.

An expression that can never fire (``0 0 30 2 *``, ``* * 31 2 *``) is refused like a syntax error.

Daylight saving time. Slots are wall-clock times in the schedule's zone, with one rule for
each transition (the same rule celery beat's time-zone-aware crontab follows, so that beat
wakes up when a slot is due):

- **Missing hour** (clocks go forward): a wall-clock time that does not exist that day fires at
  that time plus the length of the jump, once: 02:30 in Europe/Paris on the last Sunday of
  March fires at 03:30 CEST. If that is also a time of the expression, the two are one slot,
  so a daily run neither skips the day nor runs twice, and ``*/15 * * * *`` goes from 01:45 CET
  to 03:00 CEST, fifteen real minutes later.
- **Repeated hour** (clocks go back): a wall-clock time that occurs twice fires at its first
  occurrence only: 01:30 in America/New_York on the first Sunday of November fires at 01:30 EDT
  and not again at 01:30 EST. Schedules that fire several times an hour therefore pause for the
  second pass of that hour (``*/15`` fires at 01:45 EDT, then at 02:00 EST, 75 minutes later).

In Python terms: each matching wall-clock time is localised with ``fold=0``; instants that
coincide are one slot.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

MONTH_NAMES = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}  # fmt: skip
WEEKDAY_NAMES = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
MONTH_TITLES = ("", *calendar.month_name[1:])

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Longest expression accepted: a field may list many values, but an expression is a line, not a file.
MAX_EXPRESSION_LENGTH = 200

# Zone names that are not a place: "localtime" is whatever the machine is set to, "Factory" is a
# placeholder zone. Both would make a schedule mean different things on different machines.
_NOT_PLACES = {"localtime", "Factory"}

# Every validated expression fires within 28 years (a 29 February on a given weekday); the
# search gives up well after that instead of looping forever on a bug.
_SEARCH_YEARS = 60

# A time-zone offset change is at most a day (Pacific/Apia skipped 30 December 2011; DST is an
# hour or two): wall-clock times this far before an instant can still fall after it.
_MAX_SHIFT = timedelta(hours=26)

_TOKEN = re.compile(r"[0-9A-Za-z]+", re.ASCII)
_ALLOWED = re.compile(r"[0-9A-Za-z*,/\-]+", re.ASCII)


class CronError(ValueError):
    """An expression that is refused; ``field`` names the cron field at fault (or None)."""

    def __init__(self, field: str | None, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field} field: {reason}" if field else reason)


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _FieldSpec("minute", 0, 59, {}),
    _FieldSpec("hour", 0, 23, {}),
    _FieldSpec("day of month", 1, 31, {}),
    _FieldSpec("month", 1, 12, MONTH_NAMES),
    _FieldSpec("day of week", 0, 7, WEEKDAY_NAMES),
)


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the matching values of each field, sorted."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    days_restricted: bool  # the day-of-month field does not start with "*"
    weekdays_restricted: bool
    day_or_weekday: bool  # cron's rule: both restricted -> either may match

    def matches_date(self, day: date) -> bool:
        in_month = day.day in self.days
        in_week = day.isoweekday() % 7 in self.weekdays
        return (in_month or in_week) if self.day_or_weekday else (in_month and in_week)

    def beat_fields(self) -> dict[str, str]:
        """The fields of the django-celery-beat ``CrontabSchedule`` that wakes beat for this expression.

        Celery's crontab requires day of month *and* day of week to match; when cron's "either"
        rule applies, beat is woken every day at the expression's times and the run's own
        schedule decides which of those days are slots.
        """
        either = self.day_or_weekday
        return {
            "minute": _compact(self.minutes, 0, 59),
            "hour": _compact(self.hours, 0, 23),
            "day_of_month": "*" if either else _compact(sorted(self.days), 1, 31),
            "month_of_year": _compact(sorted(self.months), 1, 12),
            "day_of_week": "*" if either else _compact(sorted(self.weekdays), 0, 6),
        }


def parse(expression: str) -> Cron:
    """Parse and validate ``expression``; raises CronError naming the field and the reason."""
    if not isinstance(expression, str):
        raise CronError(None, "The schedule must be a string of five fields, e.g. '*/15 * * * *'.")
    text = expression.strip(" \t")
    if not text:
        raise CronError(None, "The schedule is empty; give five fields: minute hour day-of-month month day-of-week.")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise CronError(None, f"The schedule is longer than {MAX_EXPRESSION_LENGTH} characters.")
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise CronError(None, f"Unknown macro {text!r}; use one of {', '.join(MACROS)} or five fields.")
        return _parse_fields(text.lower(), MACROS[text.lower()].split(" "))
    fields = re.split(r"[ \t]+", text)
    if len(fields) != 5:
        odd = next((char for char in text if not (char.isascii() and char.isprintable()) and char != "\t"), None)
        if odd is not None:  # e.g. a no-break space pasted from a document: not a separator
            raise CronError(None, f"The schedule contains {odd!r} (U+{ord(odd):04X}); separate fields with spaces.")
        raise CronError(
            None,
            f"Expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}."
            + (" Seconds and years are not supported." if len(fields) in (6, 7) else ""),
        )
    return _parse_fields(" ".join(fields), fields)


def _parse_fields(expression: str, fields: list[str]) -> Cron:
    values = [_parse_field(spec, text) for spec, text in zip(_FIELDS, fields, strict=True)]
    minutes, hours, days, months, weekdays = values
    weekdays = {0 if day == 7 else day for day in weekdays}
    days_restricted, weekdays_restricted = not fields[2].startswith("*"), not fields[4].startswith("*")
    cron = Cron(
        expression=expression,
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=frozenset(weekdays),
        days_restricted=days_restricted,
        weekdays_restricted=weekdays_restricted,
        day_or_weekday=days_restricted and weekdays_restricted,
    )
    _check_can_fire(cron)
    return cron


def _parse_field(spec: _FieldSpec, text: str) -> set[int]:
    bad = next((char for char in text if not _ALLOWED.fullmatch(char)), None)
    if bad is not None:
        allowed = "ASCII digits, '*', ',', '-', '/'" + (" and names" if spec.names else "")
        raise CronError(spec.name, f"{text!r} contains {bad!r} (U+{ord(bad):04X}); only {allowed} are allowed.")
    result: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(spec.name, f"{text!r} has an empty item in its list.")
        result |= _parse_part(spec, part)
    return result


def _parse_part(spec: _FieldSpec, part: str) -> set[int]:
    span, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit():
            raise CronError(spec.name, f"{part!r}: the step after '/' must be a whole number.")
        step = int(step_text)
        if step == 0:
            raise CronError(spec.name, f"{part!r}: a step of 0 never advances; use 1 or more.")
        if step > spec.high - spec.low + 1:
            raise CronError(spec.name, f"{part!r}: step {step} is larger than the range {spec.low}-{spec.high}.")
    if span == "*":
        low, high = spec.low, spec.high
    elif "-" in span:
        first, _, last = span.partition("-")
        low, high = _value(spec, first, part), _value(spec, last, part)
        if high < low:
            raise CronError(
                spec.name,
                f"{part!r}: the range goes backwards; ranges do not wrap (write {low}-{spec.high},{spec.low}-{high}).",
            )
    else:
        low = _value(spec, span, part)
        high = spec.high if slash else low  # "a/s" means from a to the field's maximum, every s
    return set(range(low, high + 1, step))


def _value(spec: _FieldSpec, token: str, part: str) -> int:
    if not _TOKEN.fullmatch(token or "-"):
        raise CronError(spec.name, f"{part!r} is not a value, a range or a step.")
    if token.isdigit():
        if len(token) > 2:
            raise CronError(spec.name, f"{token} is out of range {spec.low}-{spec.high}.")
        number = int(token)
    elif token.lower() in spec.names:
        number = spec.names[token.lower()]
    elif spec.names:
        raise CronError(spec.name, f"{token!r} is not a number or a known name ({', '.join(spec.names)}).")
    else:
        raise CronError(spec.name, f"{token!r} is not a number.")
    if not spec.low <= number <= spec.high:
        raise CronError(spec.name, f"{number} is out of range {spec.low}-{spec.high}.")
    return number


def _check_can_fire(cron: Cron) -> None:
    """Refuse a day of month that exists in none of the months (30 February): it would never fire.

    With cron's "either" rule the weekdays alone make it fire; with "both", any existing day
    of month falls on each weekday sooner or later.
    """
    if cron.day_or_weekday:
        return
    longest = {month: 29 if month == 2 else calendar.monthrange(2001, month)[1] for month in cron.months}
    if any(day <= longest[month] for month in cron.months for day in cron.days):
        return
    days = ", ".join(str(day) for day in sorted(cron.days))
    months = ", ".join(MONTH_TITLES[month] for month in sorted(cron.months))
    raise CronError("day of month", f"day {days} never occurs in {months}: the schedule would never fire.")


def _compact(values, low: int, high: int) -> str:
    """Sorted values as celery's crontab reads them: "*", or runs like "0-4,10,15"."""
    values = list(values)
    if values == list(range(low, high + 1)):
        return "*"
    runs: list[str] = []
    start = previous = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        runs.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ",".join(runs)


@lru_cache(maxsize=1)
def timezone_names() -> frozenset[str]:
    """IANA zone names accepted for a schedule."""
    return frozenset(available_timezones() - _NOT_PLACES)


def get_timezone(name: str) -> ZoneInfo:
    """The zone called ``name``; raises CronError(field "timezone") if it is not an IANA zone."""
    if not isinstance(name, str) or name not in timezone_names():
        raise CronError("timezone", f"{name!r} is not an IANA time zone name (e.g. 'Europe/Paris', 'UTC').")
    return ZoneInfo(name)


class Schedule:
    """A cron expression in a time zone: its fire times ("slots"), as aware UTC datetimes."""

    def __init__(self, cron: Cron, tz: ZoneInfo):
        self.cron = cron
        self.tz = tz

    @classmethod
    def from_text(cls, expression: str, timezone_name: str) -> Schedule:
        return cls(parse(expression), get_timezone(timezone_name))

    def next_after(self, instant: datetime) -> datetime:
        """The first slot strictly after ``instant``."""
        after = instant.astimezone(UTC)
        local = after.astimezone(self.tz)
        start = local.replace(tzinfo=None, fold=0, second=0, microsecond=0)
        shift = local.utcoffset() - (after - _MAX_SHIFT).astimezone(self.tz).utcoffset()
        if shift > timedelta(0):
            start -= shift  # a jump forward just happened: earlier wall times may land after `instant`
        best: datetime | None = None
        for wall in self._walls_from(start):
            if best is not None and wall >= best.astimezone(self.tz).replace(tzinfo=None):
                return best  # no later wall-clock time can be earlier than the shifted one
            slot = wall.replace(tzinfo=self.tz).astimezone(UTC)
            if slot <= after:
                continue
            if best is None or slot < best:
                best = slot
            if self._exists(wall, slot):
                return best
            # `wall` is in a gap and fires later than written: a time after the gap may come first.
        raise RuntimeError(f"{self.cron.expression!r} has no fire time within {_SEARCH_YEARS} years")

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        slots, current = [], after
        for _ in range(count):
            current = self.next_after(current)
            slots.append(current)
        return slots

    def latest_at_or_before(self, instant: datetime, *, not_before: datetime) -> datetime | None:
        """The last slot in ``[not_before, instant]``, or None."""
        for window in (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=367)):
            start = max(instant - window, not_before - timedelta(microseconds=1))
            found = self._last_slot_from(start, instant)
            if found is not None or start < not_before:
                return found
        return self._last_slot_from(not_before - timedelta(microseconds=1), instant)

    def count_between(self, first: datetime, last: datetime, *, limit: int) -> int:
        """How many slots lie in ``[first, last]``, counting up to ``limit``."""
        count, slot = 0, self.next_after(first - timedelta(microseconds=1))
        while slot <= last and count < limit:
            count += 1
            slot = self.next_after(slot)
        return count

    def _last_slot_from(self, start: datetime, end: datetime) -> datetime | None:
        slot, found = self.next_after(start), None
        while slot <= end:
            found, slot = slot, self.next_after(slot)
        return found

    def _exists(self, wall: datetime, slot: datetime) -> bool:
        return slot.astimezone(self.tz).replace(tzinfo=None) == wall

    def _walls_from(self, start: datetime) -> Iterator[datetime]:
        """Matching wall-clock times at or after ``start`` (naive, minute precision), in order."""
        cron = self.cron
        first_day = start.date()
        for day in self._days_from(first_day):
            for hour in cron.hours:
                if day == first_day and hour < start.hour:
                    continue
                for minute in cron.minutes:
                    if day == first_day and hour == start.hour and minute < start.minute:
                        continue
                    yield datetime(day.year, day.month, day.day, hour, minute)

    def _days_from(self, first: date) -> Iterator[date]:
        cron = self.cron
        year, month, day = first.year, first.month, first.day
        for _ in range(_SEARCH_YEARS * 12):
            if month in cron.months:
                for number in range(day, calendar.monthrange(year, month)[1] + 1):
                    candidate = date(year, month, number)
                    if cron.matches_date(candidate):
                        yield candidate
            year, month, day = (year + 1, 1, 1) if month == 12 else (year, month + 1, 1)
