"""Cron schedules with time zones, through croniter (parsing and the next fire time).

Five fields (minute hour day month weekday) as in crontab; a sixth field, seconds, may come first
(`*/10 * * * * *`), as in Quartz and APScheduler. Fire times are computed in the job's time zone
(daylight-saving changes included) and stored in UTC.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from labwork.errors import ConfigError, MissingExtra

MAX_MISSED = 1000  # fire times recorded as missed after a long outage, at most
_TINY = timedelta(microseconds=1)


def _croniter():  # noqa: ANN202 - the croniter class
    try:
        from croniter import croniter
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingExtra("jobs", "job schedules") from exc
    return croniter


def zone(name: str, where: str = "timezone") -> tzinfo:
    """A time zone by its IANA name ('Europe/Berlin', 'UTC')."""
    try:
        if not name or name != name.strip() or name.startswith(("/", ".")):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        import difflib
        close = difflib.get_close_matches(name or "", sorted(available_timezones()), n=1)
        raise ConfigError(f"time zone {name!r} does not exist", where=where,
                          hint=f"use an IANA name like 'Europe/Berlin' or 'UTC'"
                               + (f"; did you mean '{close[0]}'?" if close else "")) from exc


def _iter(expr: str, start: datetime):  # noqa: ANN202 - a croniter
    croniter = _croniter()
    fields = expr.split()
    return croniter(expr, start, second_at_beginning=len(fields) == 6)


def check(expr: str, tz: str, where: str = "schedule") -> str:
    """The expression, stripped, when it parses in `tz`; else a ConfigError saying why."""
    expr = " ".join((expr or "").split())
    if len(expr) > 200:
        raise ConfigError(f"the cron expression is {len(expr)} characters long; at most 200", where=where)
    zone(tz)
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise ConfigError(f"cron expression {expr!r} has {len(fields)} fields; expected 5 "
                          "(minute hour day month weekday) or 6 (seconds first)", where=where,
                          hint="e.g. '0 6 * * *' for 06:00 every day, '*/15 * * * *' every 15 minutes")
    croniter = _croniter()
    if not croniter.is_valid(expr, second_at_beginning=len(fields) == 6):
        raise ConfigError(f"cron expression {expr!r} does not parse", where=where,
                          hint="fields are minute hour day month weekday, e.g. '30 2 * * 1-5'")
    try:
        next_after(expr, tz, datetime.now(UTC))
    except Exception as exc:  # e.g. '0 0 31 2 *' never fires
        raise ConfigError(f"cron expression {expr!r} never fires: {exc}", where=where) from exc
    return expr


def next_after(expr: str, tz: str, after: datetime) -> datetime:
    """The first fire time strictly after `after` (aware), in UTC."""
    local = after.astimezone(zone(tz))
    return _iter(expr, local).get_next(datetime).astimezone(UTC)


def fire_times_between(expr: str, tz: str, start: datetime, end: datetime, limit: int = MAX_MISSED
                       ) -> list[datetime]:
    """Fire times t with start <= t <= end (UTC), at most `limit` (the newest kept)."""
    out: list[datetime] = []
    it = _iter(expr, (start - _TINY).astimezone(zone(tz)))
    while True:
        t = it.get_next(datetime).astimezone(UTC)
        if t > end:
            return out[-limit:]
        out.append(t)
        if len(out) > 2 * limit:
            out = out[-limit:]

