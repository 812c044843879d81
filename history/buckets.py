"""Time buckets of a trend (hour, day, week, month) in any IANA time zone. No Django.

Roll-ups are kept per UTC hour, so a bucket is a set of whole UTC hours. In a zone whose
offset is a whole number of hours (most of the world, with daylight saving time too), every
local day, week and month starts on a UTC hour, and the buckets are exact. In a zone with a
half- or quarter-hour offset (India, Nepal, Newfoundland, central Australia...), a local day
starts in the middle of a UTC hour: that hour is counted in the bucket where it starts, so up
to 30 or 45 minutes of data at each boundary land in the neighbouring bucket. ``Buckets.exact``
says which case applies, and the API returns it.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Granularity = Literal["hour", "day", "week", "month"]
GRANULARITIES: tuple[Granularity, ...] = ("hour", "day", "week", "month")

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Buckets:
    """Consecutive buckets; ``edges`` (UTC) has one more element than ``starts`` (local)."""

    starts: list[datetime]  # aware, in the requested zone: the labels
    edges: list[datetime]  # aware, UTC: bucket i is [edges[i], edges[i + 1])
    exact: bool

    @property
    def start(self) -> datetime:
        return self.edges[0]

    @property
    def end(self) -> datetime:
        return self.edges[-1]

    def hour_range(self) -> tuple[datetime, datetime]:
        """The whole UTC hours that cover every bucket."""
        return floor_hour(self.edges[0]), ceil_hour(self.edges[-1])

    def index_of(self, hour: datetime) -> int | None:
        """The bucket an hour (UTC, whole) belongs to: the one containing its start."""
        i = bisect_right(self.edges, hour) - 1
        return i if 0 <= i < len(self.starts) else None


def floor_hour(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


def buckets_between(start: datetime, end: datetime, granularity: Granularity, zone: ZoneInfo) -> Buckets:
    """The buckets that contain ``start`` up to the one that contains the instant before ``end``."""
    if end <= start:
        raise ValueError("end must be after start")
    if granularity == "hour":
        # UTC hours, labelled in the zone: exact anywhere (a half-hour zone sees :30 labels).
        edges = [floor_hour(start)]
        while edges[-1] < end:
            edges.append(edges[-1] + HOUR)
        return Buckets([edge.astimezone(zone) for edge in edges[:-1]], edges, exact=True)
    first = _truncate(start.astimezone(zone).date(), granularity)
    last_day = (end - timedelta(microseconds=1)).astimezone(zone).date()
    days = [first]
    while days[-1] <= last_day:
        days.append(_next(days[-1], granularity))
    starts = [_local_midnight(day, zone) for day in days]
    edges = [moment.astimezone(UTC) for moment in starts]
    exact = all(edge.minute == 0 and edge.second == 0 and edge.microsecond == 0 for edge in edges)
    return Buckets(starts[:-1], edges, exact)


def bucket_count(start: datetime, end: datetime, granularity: Granularity) -> int:
    """An upper bound of the number of buckets, cheap to compute before building them."""
    span = end - start
    per = {"hour": HOUR, "day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=28)}
    return int(span / per[granularity]) + 2


def _truncate(day: date, granularity: Granularity) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    if granularity == "month":
        return day.replace(day=1)
    return day


def _next(day: date, granularity: Granularity) -> date:
    if granularity == "day":
        return day + timedelta(days=1)
    if granularity == "week":
        return day + timedelta(days=7)
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    # A zone that skips midnight for daylight saving time gets zoneinfo's reading of the
    # missing time, the same instant for the bucket that ends and the one that starts there.
    return datetime(day.year, day.month, day.day, tzinfo=zone)
