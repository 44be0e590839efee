"""The appeal window (公示期): when an announcement's standstill ends, in working days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

# Monday to Friday; public holidays are not modelled, so a window over a holiday is shorter.
WORKING_WEEKDAYS = frozenset(range(5))


def standstill_end(announced_at: datetime, working_days: int, zone: tzinfo) -> datetime | None:
    """The moment the window closes: the announcement's local time of day, `working_days`
    working days later in the department's time zone (UTC); None when there is no window.

    Counting starts the day after the announcement, so an announcement on Friday at 10:00 with
    3 working days ends on Wednesday at 10:00, and one on Saturday ends on Wednesday too.
    """
    if working_days < 0:
        raise ValueError("working_days must not be negative")
    if working_days == 0:
        return None
    if announced_at.tzinfo is None:
        raise ValueError("announced_at must be timezone-aware")
    local = announced_at.astimezone(zone)
    day = local.date()
    counted = 0
    while counted < working_days:
        day += timedelta(days=1)
        if day.weekday() in WORKING_WEEKDAYS:
            counted += 1
    # The same wall-clock time; across a daylight-saving change the zone's offset that day.
    end = datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=zone)
    return end.astimezone(UTC)


def is_window_open(ends_at: datetime | None, now: datetime) -> bool:
    """Appeals are taken strictly before the end; at the end itself the window is closed."""
    return ends_at is not None and now < ends_at
