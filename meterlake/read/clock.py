"""The clock of the read side: the configured zone, instants people type, and times
as people read them.

The views follow docs/semantics.md, "The clock and the views": timestamps come back
in the configured zone (`zone_of`). CSV and JSON print them in full with their
offset (ISO 8601); the human table, the notes, the page and the report print local
wall-clock time (`wall_clock`: `2024-02-02 00:00`), with the offset only in the hour
that October repeats. A time given to `--as-of` or `--at` is read by
`parse_instant`: local time in the zone, or ISO 8601 with an offset.
"""
from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError


def zone_of(config: Config) -> ZoneInfo:
    try:
        return ZoneInfo(config.semantics.zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise MeterlakeError(f"unknown time zone {config.semantics.zone!r}") from None


def parse_instant(text: str, zone: tzinfo) -> datetime:
    """'YYYY-MM-DD HH:MM:SS' is local time in `zone`; ISO 8601 with an offset is absolute.

    A local time in the repeated October hour is its first occurrence, one in
    the skipped March hour uses the offset before the switch (fold=0), as in
    docs/semantics.md.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MeterlakeError(
            f"cannot read time {text!r}: expected 'YYYY-MM-DD HH:MM:SS' (local time) "
            "or ISO 8601 with an offset, e.g. 2024-02-03T12:00:00+00:00"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def wall_clock(value: datetime, zone: tzinfo | None = None) -> str:
    """An instant as people read it in `zone` (default: its own): '2024-02-02 00:00',
    with ':SS' when it is not on the minute, and the offset only where that wall-clock
    time happens twice (the hour repeated when legal time ends in October). The one
    rule for times shown to people: the CLI's tables and notes, the page, the report."""
    local = value.astimezone(zone or value.tzinfo)
    text = local.strftime("%Y-%m-%d %H:%M")
    if local.second or local.microsecond:
        text += f":{local.second:02d}"
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        offset = local.strftime("%z")
        text += f" {offset[:3]}:{offset[3:]}"
    return text
