"""The time-of-use tariff as data: conf/tariff.toml -> a lookup per half-hour period.

Each tariff is effective from a local date; each has a winter and a summer
schedule (legal time: summer while the zone observes daylight saving time);
each schedule maps every half hour of the day to a band, each band to a price.
"""

from __future__ import annotations

import tomllib
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from meterlake.core.errors import MeterlakeError

SLOTS_PER_DAY = 48
HALF_HOUR_US = 1_800_000_000
SEASONS = ("winter", "summer")


@dataclass(frozen=True)
class Band:
    name: str
    price: float


@dataclass(frozen=True)
class Schedule:
    """The band of each of the 48 half hours of a day (slot 0 = 00:00-00:30)."""

    slots: tuple[Band, ...]


@dataclass(frozen=True)
class TariffPeriod:
    name: str
    effective_from: date
    winter: Schedule
    summer: Schedule


def _slot(hhmm: str, where: str) -> int:
    try:
        hours, minutes = (int(x) for x in hhmm.split(":"))
    except ValueError:
        raise MeterlakeError(f"tariff {where}: bad time {hhmm!r}, expected HH:MM") from None
    if minutes not in (0, 30) or not 0 <= hours <= 24 or (hours == 24 and minutes):
        raise MeterlakeError(f"tariff {where}: {hhmm} is not on a half hour")
    return hours * 2 + minutes // 30


def parse_schedule(bands: dict[str, list[str]], prices: dict[str, float], where: str) -> Schedule:
    slots: list[Band | None] = [None] * SLOTS_PER_DAY
    for name, spans in bands.items():
        if name not in prices:
            raise MeterlakeError(f"tariff {where}: band {name!r} has no price")
        for span in spans:
            start_s, _, end_s = span.partition("-")
            start, end = _slot(start_s, where), _slot(end_s, where)
            slot = start
            while slot != end:  # spans may wrap midnight: 22:00-02:00
                if slots[slot] is not None:
                    raise MeterlakeError(f"tariff {where}: {span} overlaps another band")
                slots[slot] = Band(name, float(prices[name]))
                slot = (slot + 1) % SLOTS_PER_DAY
    missing = [i for i, band in enumerate(slots) if band is None]
    if missing:
        first = missing[0]
        raise MeterlakeError(f"tariff {where}: {first // 2:02d}:{first % 2 * 30:02d} has no band")
    return Schedule(tuple(b for b in slots if b is not None))


class Tariff:
    """Band and price of any half-hour period, by the instant it starts."""

    def __init__(self, periods: list[TariffPeriod], zone: str) -> None:
        if not periods:
            raise MeterlakeError("tariff: no [[tariff]] entries")
        self.periods = sorted(periods, key=lambda p: p.effective_from)
        self.zone_name = zone
        self.zone = ZoneInfo(zone)
        self._starts = [p.effective_from for p in self.periods]
        self.band_at = lru_cache(maxsize=65_536)(self._band_at)

    def __reduce__(self) -> tuple[type, tuple[list[TariffPeriod], str]]:
        return (Tariff, (self.periods, self.zone_name))  # the cache is rebuilt on arrival

    def _band_at(self, period_start_us: int) -> Band:
        local = datetime.fromtimestamp(period_start_us / 1e6, UTC).astimezone(self.zone)
        index = bisect_right(self._starts, local.date()) - 1
        if index < 0:
            raise MeterlakeError(f"no tariff in force on {local.date()}")
        period = self.periods[index]
        schedule = period.summer if local.dst() else period.winter
        return schedule.slots[local.hour * 2 + local.minute // 30]


def check_zone(zone: str) -> None:
    """Half-hour periods are split on the UTC timeline: offsets must be half hours."""
    tz = ZoneInfo(zone)
    day = datetime(2000, 1, 1, tzinfo=UTC)
    for i in range(0, 366 * 60, 7):
        offset = (day + timedelta(days=i / 2)).astimezone(tz).utcoffset()
        if offset is None or offset.total_seconds() % 1800:
            raise MeterlakeError(f"zone {zone}: offsets must be whole half hours")


def load_tariff(path: Path, zone: str) -> Tariff:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MeterlakeError(f"tariff file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MeterlakeError(f"tariff file {path} is not valid TOML: {exc}") from None
    check_zone(zone)
    periods = []
    for entry in data.get("tariff", []):
        name = entry.get("name", "tariff")
        prices = entry.get("prices", {})
        periods.append(
            TariffPeriod(
                name=name,
                effective_from=date.fromisoformat(str(entry["effective_from"])),
                **{s: parse_schedule(entry[s], prices, f"{name} {s}") for s in SEASONS},
            )
        )
    return Tariff(periods, zone)
