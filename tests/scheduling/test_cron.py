"""Cron expressions: what is refused and why, and when the accepted ones fire, DST days included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduling.cron import CronError, Schedule, parse


@pytest.mark.parametrize(
    ("expression", "field", "fragment"),
    [
        ("61 * * * *", "minute", "61 is out of range 0-59"),
        ("* 24 * * *", "hour", "24 is out of range 0-23"),
        ("* * 0 * *", "day of month", "0 is out of range 1-31"),
        ("* * * 13 *", "month", "13 is out of range 1-12"),
        ("* * * * 8", "day of week", "8 is out of range 0-7"),
        ("*/0 * * * *", "minute", "a step of 0 never advances"),
        ("*/61 * * * *", "minute", "step 61 is larger than the range 0-59"),
        ("0 0 1 1 * 2027", None, "Expected 5 fields"),
        ("0 0 1 1 * *", None, "got 6"),
        ("* * * *", None, "got 4"),
        ("", None, "empty"),
        ("   ", None, "empty"),
        ("٦١ * * * *", "minute", "U+0666"),  # Arabic-Indic digits: int() would read 61
        ("\uff11 * * * *", "minute", "U+FF11"),  # full-width digit one
        ("5\u00a0* * * *", None, "U+00A0"),  # a no-break space is not a separator
        ("0 0 30 2 *", "day of month", "never occurs in February"),
        ("* * 31 2 *", "day of month", "never occurs in February"),
        ("0 0 31 4,6,9,11 *", "day of month", "never occurs in April, June, September, November"),
        ("22-2 * * * *", "minute", "ranges do not wrap"),
        ("1,,2 * * * *", "minute", "empty item"),
        ("0 0 L * *", "day of month", "'L' is not a number"),
        ("? * * * *", "minute", "'?'"),
        ("-1 * * * *", "minute", "not a value, a range or a step"),
        ("* * * foo *", "month", "'foo' is not a number or a known name"),
        ("100 * * * *", "minute", "out of range"),
        ("@reboot", None, "Unknown macro"),
    ],
)
def test_refused_expressions_name_the_field_and_the_reason(expression, field, fragment):
    with pytest.raises(CronError) as refused:
        parse(expression)

    assert refused.value.field == field
    assert fragment in str(refused.value)


@pytest.mark.parametrize(
    ("expression", "minutes", "hours"),
    [
        ("* * * * *", list(range(60)), list(range(24))),
        ("*/15 9-17 * * mon-fri", [0, 15, 30, 45], list(range(9, 18))),
        ("5/20 * * * *", [5, 25, 45], list(range(24))),
        ("0,30 2 * * *", [0, 30], [2]),
        ("@hourly", [0], list(range(24))),
        ("  0\t12 * * *  ", [0], [12]),
        ("0 0 29 2 *", [0], [0]),  # only in leap years, but it does fire
    ],
)
def test_accepted_expressions(expression, minutes, hours):
    cron = parse(expression)

    assert list(cron.minutes) == minutes and list(cron.hours) == hours


def test_sunday_is_0_or_7_and_names_are_case_insensitive():
    assert parse("0 0 * * 7").weekdays == parse("0 0 * * SUN").weekdays == frozenset({0})
    assert parse("0 0 * Jan-MAR *").months == frozenset({1, 2, 3})


def fire_times(expression: str, zone: str, start: datetime, count: int) -> list[str]:
    schedule = Schedule.from_text(expression, zone)
    return [slot.astimezone(schedule.tz).strftime("%m-%d %H:%M %Z") for slot in schedule.upcoming(start, count)]


def test_plain_days_fire_at_the_wall_clock_time_whatever_the_offset():
    times = fire_times("0 9 * * *", "America/New_York", datetime(2026, 3, 6, tzinfo=UTC), 4)

    assert times == ["03-06 09:00 EST", "03-07 09:00 EST", "03-08 09:00 EDT", "03-09 09:00 EDT"]


@pytest.mark.parametrize(
    ("zone", "expression", "start", "expected"),
    [
        # Europe/Paris, 29 March 2026: 02:00 CET jumps to 03:00 CEST. The missing 02:30 runs at
        # 03:30, once; the day is neither skipped nor run twice.
        ("Europe/Paris", "30 2 * * *", datetime(2026, 3, 27, 12, tzinfo=UTC),
         ["03-28 02:30 CET", "03-29 03:30 CEST", "03-30 02:30 CEST"]),
        # Both 02:00 and 02:30 are missing: they land on 03:00 and 03:30.
        ("Europe/Paris", "0,30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC),
         ["03-29 03:00 CEST", "03-29 03:30 CEST", "03-30 02:00 CEST"]),
        # 02:30 (shifted) and 03:30 are the same instant: one slot.
        ("Europe/Paris", "30 2,3 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC),
         ["03-29 03:30 CEST", "03-30 02:30 CEST", "03-30 03:30 CEST"]),
        # Europe/Paris, 25 October 2026: 03:00 CEST falls back to 02:00 CET. 02:30 happens twice;
        # it runs at the first one only.
        ("Europe/Paris", "30 2 * * *", datetime(2026, 10, 24, 12, tzinfo=UTC),
         ["10-25 02:30 CEST", "10-26 02:30 CET"]),
        # America/New_York, 8 March 2026: 02:00 EST jumps to 03:00 EDT.
        ("America/New_York", "30 2 * * *", datetime(2026, 3, 7, 12, tzinfo=UTC),
         ["03-08 03:30 EDT", "03-09 02:30 EDT"]),
        # America/New_York, 1 November 2026: 02:00 EDT falls back to 01:00 EST.
        ("America/New_York", "30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=UTC),
         ["11-01 01:30 EDT", "11-02 01:30 EST"]),
    ],
)  # fmt: skip
def test_daily_runs_on_dst_days_fire_once(zone, expression, start, expected):
    assert fire_times(expression, zone, start, len(expected)) == expected


def test_frequent_runs_across_the_missing_hour_keep_real_time():
    times = fire_times("*/30 * * * *", "Europe/Paris", datetime(2026, 3, 28, 23, 45, tzinfo=UTC), 4)

    assert times == ["03-29 01:00 CET", "03-29 01:30 CET", "03-29 03:00 CEST", "03-29 03:30 CEST"]


def test_frequent_runs_pause_in_the_second_pass_of_the_repeated_hour():
    times = fire_times("*/30 * * * *", "America/New_York", datetime(2026, 11, 1, 4, 45, tzinfo=UTC), 4)

    assert times == ["11-01 01:00 EDT", "11-01 01:30 EDT", "11-01 02:00 EST", "11-01 02:30 EST"]


def test_the_next_slot_is_found_from_inside_the_repeated_hour():
    inside_second_pass = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)  # 01:10 EST

    assert fire_times("30 1 * * *", "America/New_York", inside_second_pass, 1) == ["11-02 01:30 EST"]


def test_the_next_slot_is_found_just_after_the_jump():
    just_after = datetime(2026, 3, 29, 1, 10, tzinfo=UTC)  # 03:10 CEST, before the shifted 02:30

    assert fire_times("30 2 * * *", "Europe/Paris", just_after, 1) == ["03-29 03:30 CEST"]


def test_day_of_month_or_day_of_week_when_both_are_given():
    times = fire_times("0 9 1 * mon", "UTC", datetime(2026, 5, 28, tzinfo=UTC), 3)

    assert times == ["06-01 09:00 UTC", "06-08 09:00 UTC", "06-15 09:00 UTC"]  # 1 June is a Monday too


def test_29_february_waits_for_a_leap_year_and_skips_2100():
    schedule = Schedule.from_text("0 0 29 2 *", "UTC")

    assert schedule.next_after(datetime(2096, 3, 1, tzinfo=UTC)) == datetime(2104, 2, 29, tzinfo=UTC)


def test_latest_slot_and_counts_for_missed_slots():
    schedule = Schedule.from_text("*/10 * * * *", "UTC")
    start, end = datetime(2026, 6, 1, 8, 0, tzinfo=UTC), datetime(2026, 6, 1, 9, 5, tzinfo=UTC)

    assert schedule.latest_at_or_before(end, not_before=start) == datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    assert schedule.latest_at_or_before(start.replace(minute=5), not_before=start.replace(minute=1)) is None
    assert schedule.count_between(start, end, limit=100) == 7
    assert schedule.count_between(start, end, limit=3) == 3


@pytest.mark.parametrize(
    ("expression", "beat"),
    [
        ("*/15 9-17 * * 1-5", ("0,15,30,45", "9-17", "*", "*", "1-5")),
        ("0 0 1,15 * *", ("0", "0", "1,15", "*", "*")),
        ("0 0 */2 * 1", ("0", "0", "1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31", "*", "1")),
        # Cron's "either" rule, which celery's crontab lacks: beat wakes daily, the run decides.
        ("0 9 1 * mon", ("0", "9", "*", "*", "*")),
        ("@weekly", ("0", "0", "*", "*", "0")),
    ],
)
def test_the_beat_crontab_fires_at_least_at_every_slot(expression, beat):
    fields = parse(expression).beat_fields()

    assert tuple(fields[k] for k in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")) == beat


@pytest.mark.parametrize(
    ("zone", "expression", "start"),
    [
        ("Europe/Paris", "30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC)),
        ("Europe/Paris", "*/30 * * * *", datetime(2026, 3, 28, 23, tzinfo=UTC)),
        ("America/New_York", "30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=UTC)),
        ("America/New_York", "*/30 * * * *", datetime(2026, 11, 1, 3, tzinfo=UTC)),
    ],
)
def test_celery_beat_wakes_at_exactly_these_slots_across_dst(zone, expression, start):
    """Beat's crontab (django-celery-beat's time-zone-aware one) follows the same DST rule."""
    from django_celery_beat.tzcrontab import TzAwareCrontab

    from config.celery import app

    schedule = Schedule.from_text(expression, zone)
    fields = schedule.cron.beat_fields()
    clock = {"now": start}
    crontab = TzAwareCrontab(
        minute=fields["minute"], hour=fields["hour"], day_of_month=fields["day_of_month"],
        month_of_year=fields["month_of_year"], day_of_week=fields["day_of_week"], tz=schedule.tz, app=app,
    )  # fmt: skip
    crontab.nowfun = lambda: clock["now"].astimezone(schedule.tz)
    last_run, fired = start, []
    while clock["now"] < start + timedelta(days=2):  # what beat's loop does, every 30 seconds
        due, _ = crontab.is_due(last_run)
        if due:
            fired.append(clock["now"].replace(second=0))
            last_run = clock["now"]
        clock["now"] += timedelta(seconds=30)

    assert fired == schedule.upcoming(start, len(fired)) and len(fired) >= 2
