"""Tariff plans as data: conf/tariff.toml -> the band and price of any half-hour period
under any plan, and each meter's contracted plan.

A *cycle* says which band each half hour of the day is in: daily (one schedule for
every day) or weekly (weekday, Saturday and Sunday schedules), each with a winter
schedule (legal winter time) and a summer one (legal summer time: while the zone
observes daylight saving time). A *plan* prices the bands of a cycle, with prices
(and, if need be, the cycle) effective from local dates. Each meter has a contracted
plan: `[contracts] default`, or its entry in `[contracts.meters]`.

Loaded once into frozen, picklable structures; `Tariff.band_at` caches each
(period, plan) it is asked, so silver and gold look up a period once per plan.
A malformed file is one `MeterlakeError` naming the file and the key.
"""

from __future__ import annotations

import tomllib
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from meterlake.core.errors import MeterlakeError

if TYPE_CHECKING:  # numpy only for the columnar lookups: the conf loads without it
    import numpy as np

SLOTS_PER_DAY = 48
HALF_HOUR_US = 1_800_000_000
SEASONS = ("winter", "summer")
DAY_TYPES = ("weekday", "saturday", "sunday")  # the schedules of a weekly cycle
CYCLE_KINDS = ("daily", "weekly")
WEEK = ("weekday",) * 5 + ("saturday", "sunday")  # by date.weekday(), Monday first


@dataclass(frozen=True)
class Band:
    name: str
    price: float


@dataclass(frozen=True)
class Schedule:
    """The band of each of the 48 half hours of a day (slot 0 = 00:00-00:30)."""

    slots: tuple[Band, ...]


@dataclass(frozen=True)
class Cycle:
    """Band names per half hour, by season and (weekly) day type."""

    name: str
    kind: str  # daily | weekly
    bands: frozenset[str]
    slots: dict[tuple[str, str], tuple[str, ...]]  # (season, day type) -> 48 band names

    def day_type(self, day: date) -> str:
        if self.kind == "daily":
            return "daily"
        return WEEK[day.weekday()]


@dataclass(frozen=True)
class TariffPeriod:
    """A plan's prices (and cycle) from a local date until the next ones start."""

    name: str
    effective_from: date
    schedules: dict[tuple[str, str], Schedule]  # (season, day type) -> priced slots
    cycle: Cycle

    def schedule(self, summer: bool, day: date) -> Schedule:
        return self.schedules[("summer" if summer else "winter", self.cycle.day_type(day))]


@dataclass(frozen=True)
class Plan:
    name: str
    title: str
    periods: tuple[TariffPeriod, ...]  # sorted by effective_from

    def at(self, day: date) -> TariffPeriod:
        index = bisect_right([p.effective_from for p in self.periods], day) - 1
        if index < 0:
            raise MeterlakeError(f"plan {self.name}: no prices in force on {day}")
        return self.periods[index]


class Tariff:
    """Band and price of any half-hour period under any plan, by the instant it starts;
    each meter's contracted plan (an index into `plans`)."""

    def __init__(
        self, plans: list[Plan], zone: str, default: str | None = None,
        meters: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        if not plans:
            raise MeterlakeError("tariff: no plans")
        self.plans = tuple(plans)
        self.names = tuple(p.name for p in self.plans)
        self.default_name = default or self.names[0]
        self.meters = dict(meters or {})
        index = {name: i for i, name in enumerate(self.names)}
        self.default = index[self.default_name]
        self.contracts = {sensor: index[name] for sensor, name in self.meters.items()}
        self.zone_name = zone
        self.zone = ZoneInfo(zone)
        self.band_at = lru_cache(maxsize=65_536)(self._band_at)

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # the cache is rebuilt on arrival
        return (Tariff, (list(self.plans), self.zone_name, self.default_name, self.meters))

    @property
    def periods(self) -> tuple[TariffPeriod, ...]:
        """The default plan's prices in force, oldest first."""
        return self.plans[self.default].periods

    def _band_at(self, period_start_us: int, plan: int | None = None) -> Band:
        local = datetime.fromtimestamp(period_start_us / 1e6, UTC).astimezone(self.zone)
        chosen = self.plans[self.default if plan is None else plan]
        schedule = chosen.at(local.date()).schedule(bool(local.dst()), local.date())
        return schedule.slots[local.hour * 2 + local.minute // 30]

    def plan_of(self, sensor_id: str) -> int:
        return self.contracts.get(sensor_id, self.default)

    def plans_of(self, sensor_ids: np.ndarray) -> np.ndarray:
        """The contracted plan of each of many sensor ids (object array)."""
        import numpy as np

        if not self.contracts:
            return np.full(len(sensor_ids), self.default, dtype=np.int64)
        import pandas as pd  # type: ignore[import-untyped]

        which, unique = pd.factorize(sensor_ids)  # hashing: no sort of the ids
        plans = np.array([self.plan_of(s) for s in unique.tolist()], dtype=np.int64)
        chosen: np.ndarray = plans[np.asarray(which, dtype=np.int64)]
        return chosen

    def prices(self, periods: np.ndarray, plans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Band names and prices of many (period start µs, plan) pairs, each distinct
        pair looked up once."""
        import numpy as np

        count = len(self.plans)
        keys = periods // HALF_HOUR_US * count + plans
        unique, which = np.unique(keys, return_inverse=True)
        bands = [self.band_at(int(k // count * HALF_HOUR_US), int(k % count))
                 for k in unique.tolist()]  # fmt: skip
        names = np.array([b.name for b in bands], dtype=object)
        price = np.array([b.price for b in bands], dtype=np.float64)
        which = which.reshape(-1)
        return names[which], price[which]


def _slot(hhmm: str, where: str) -> int:
    try:
        hours, minutes = (int(x) for x in hhmm.split(":"))
    except ValueError:
        raise MeterlakeError(f"tariff {where}: bad time {hhmm!r}, expected HH:MM") from None
    if minutes not in (0, 30) or not 0 <= hours <= 24 or (hours == 24 and minutes):
        raise MeterlakeError(f"tariff {where}: {hhmm} is not on a half hour")
    return hours * 2 + minutes // 30


def parse_slots(bands: dict[str, list[str]], where: str) -> tuple[str, ...]:
    """{band: ["HH:MM-HH:MM", ...]} -> the band name of each half hour, checked: on
    half hours, no overlap, the whole day covered."""
    slots: list[str | None] = [None] * SLOTS_PER_DAY
    if not isinstance(bands, dict):
        raise MeterlakeError(f"tariff {where}: expected a table of bands")
    for name, spans in bands.items():
        for span in spans if isinstance(spans, list) else [spans]:
            start_s, _, end_s = str(span).partition("-")
            start, end = _slot(start_s, where), _slot(end_s, where)
            count = (end - start) % SLOTS_PER_DAY or (end - start)  # 00:00-24:00: all 48
            for slot in range(start, start + count):  # spans may wrap midnight: 22:00-02:00
                if slots[slot % SLOTS_PER_DAY] is not None:
                    raise MeterlakeError(f"tariff {where}: {span} overlaps another band")
                slots[slot % SLOTS_PER_DAY] = name
    missing = [i for i, band in enumerate(slots) if band is None]
    if missing:
        first = missing[0]
        raise MeterlakeError(f"tariff {where}: {first // 2:02d}:{first % 2 * 30:02d} has no band")
    return tuple(b for b in slots if b is not None)


def parse_schedule(bands: dict[str, list[str]], prices: dict[str, float], where: str) -> Schedule:
    """One day's bands, priced (every band needs a price)."""
    names = parse_slots(bands, where)
    for name in bands:
        if name not in prices:
            raise MeterlakeError(f"tariff {where}: band {name!r} has no price")
    return Schedule(tuple(Band(n, float(prices[n])) for n in names))


def parse_cycle(name: str, entry: Any, where: str) -> Cycle:
    if not isinstance(entry, dict):
        raise MeterlakeError(f"{where}: expected a table")
    kind = entry.get("kind", "daily")
    if kind not in CYCLE_KINDS:
        raise MeterlakeError(f"{where}.kind: {kind!r} is not one of {', '.join(CYCLE_KINDS)}")
    slots: dict[tuple[str, str], tuple[str, ...]] = {}
    for season in SEASONS:
        if season not in entry:
            raise MeterlakeError(f"{where}.{season}: missing")
        if kind == "daily":
            slots[(season, "daily")] = parse_slots(entry[season], f"{where}.{season}")
            continue
        for day_type in DAY_TYPES:
            if not isinstance(entry[season], dict) or day_type not in entry[season]:
                raise MeterlakeError(f"{where}.{season}.{day_type}: missing")
            key = f"{where}.{season}.{day_type}"
            slots[(season, day_type)] = parse_slots(entry[season][day_type], key)
    bands = frozenset(b for day in slots.values() for b in day)
    return Cycle(name, kind, bands, slots)


def _date(value: Any, where: str) -> date:
    try:
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        raise MeterlakeError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _price_period(
    plan: str, term: dict[str, Any], cycle: Cycle, where: str
) -> tuple[TariffPeriod, date | None]:
    prices = {k: v for k, v in term.items() if k not in ("effective_from", "effective_until",
                                                         "cycle")}  # fmt: skip
    for band, price in prices.items():
        if band not in cycle.bands:
            raise MeterlakeError(
                f"{where}.{band}: band {band!r} is not in cycle {cycle.name!r} "
                f"(its bands: {', '.join(sorted(cycle.bands))})"
            )
        if isinstance(price, bool) or not isinstance(price, int | float) or not price >= 0:
            raise MeterlakeError(f"{where}.{band}: price {price!r} must be a number >= 0 (EUR/kWh)")
    unpriced = sorted(cycle.bands - set(prices))
    if unpriced:
        raise MeterlakeError(
            f"{where}: no price for band {unpriced[0]!r} of cycle {cycle.name!r}"
        )
    if "effective_from" not in term:
        raise MeterlakeError(f"{where}.effective_from: missing")
    start = _date(term["effective_from"], f"{where}.effective_from")
    until = term.get("effective_until")
    end = None if until is None else _date(until, f"{where}.effective_until")
    if end is not None and end <= start:
        raise MeterlakeError(f"{where}.effective_until: {end} is not after {start}")
    schedules = {
        key: Schedule(tuple(Band(n, float(prices[n])) for n in names))
        for key, names in cycle.slots.items()
    }
    return TariffPeriod(plan, start, schedules, cycle), end


def parse_plan(name: str, entry: Any, cycles: dict[str, Cycle], where: str) -> Plan:
    if not isinstance(entry, dict):
        raise MeterlakeError(f"{where}: expected a table")
    terms = entry.get("prices")
    if not isinstance(terms, list) or not terms:
        raise MeterlakeError(f"{where}.prices: missing (one [[{where}.prices]] or more)")
    dated: list[tuple[TariffPeriod, date | None, str]] = []
    for i, term in enumerate(terms):
        key = f"{where}.prices[{i}]"
        if not isinstance(term, dict):
            raise MeterlakeError(f"{key}: expected a table ([[{where}.prices]])")
        cycle_name = term.get("cycle", entry.get("cycle"))
        if cycle_name not in cycles:
            raise MeterlakeError(
                f"{key}.cycle: unknown cycle {cycle_name!r} (cycles: {', '.join(sorted(cycles))})"
            )
        period, end = _price_period(name, term, cycles[cycle_name], key)
        dated.append((period, end, key))
    dated.sort(key=lambda d: d[0].effective_from)
    for (period, end, key), (following, _, next_key) in pairwise(dated):
        if following.effective_from == period.effective_from or (
            end is not None and end > following.effective_from
        ):
            raise MeterlakeError(
                f"{next_key}.effective_from: {following.effective_from} overlaps {key} "
                f"(from {period.effective_from}{f' until {end}' if end else ''})"
            )
        if end is not None and end < following.effective_from:
            raise MeterlakeError(
                f"{key}.effective_until: {end} leaves a gap before {following.effective_from}"
            )
    if dated[-1][1] is not None:
        raise MeterlakeError(f"{dated[-1][2]}.effective_until: the latest prices run on, "
                             "with no effective_until")  # fmt: skip
    return Plan(name, str(entry.get("title", name)), tuple(p for p, _, _ in dated))


def check_zone(zone: str) -> None:
    """Half-hour periods are split on the UTC timeline: offsets must be half hours."""
    tz = ZoneInfo(zone)
    day = datetime(2000, 1, 1, tzinfo=UTC)
    for i in range(0, 366 * 60, 7):
        offset = (day + timedelta(days=i / 2)).astimezone(tz).utcoffset()
        if offset is None or offset.total_seconds() % 1800:
            raise MeterlakeError(f"zone {zone}: offsets must be whole half hours")


def parse_tariff(data: dict[str, Any], zone: str) -> Tariff:
    """The parsed TOML -> Tariff; errors name the key (load_tariff adds the file)."""
    cycles_data = data.get("cycles", {})
    plans_data = data.get("plans", {})
    if not isinstance(cycles_data, dict) or not cycles_data:
        raise MeterlakeError("cycles: missing (one [cycles.NAME] or more)")
    if not isinstance(plans_data, dict) or not plans_data:
        raise MeterlakeError("plans: missing (one [plans.NAME] or more)")
    cycles = {n: parse_cycle(n, c, f"cycles.{n}") for n, c in cycles_data.items()}
    plans = [parse_plan(n, p, cycles, f"plans.{n}") for n, p in plans_data.items()]
    names = [p.name for p in plans]
    contracts = data.get("contracts", {})
    default = contracts.get("default", names[0])
    meters = contracts.get("meters", {})
    for key, plan in [("contracts.default", default),
                      *((f"contracts.meters.{s!r}", p) for s, p in meters.items())]:  # fmt: skip
        if plan not in names:
            raise MeterlakeError(f"{key}: unknown plan {plan!r} (plans: {', '.join(names)})")
    return Tariff(plans, zone, default, meters)


def load_tariff(path: Path, zone: str) -> Tariff:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MeterlakeError(f"tariff file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MeterlakeError(f"tariff file {path} is not valid TOML: {exc}") from None
    check_zone(zone)
    try:
        return parse_tariff(data, zone)
    except MeterlakeError as exc:
        raise MeterlakeError(f"{path}: {exc}") from None


def check_tariff_file(path: Path, zone: str) -> None:
    """Everything the tariff file holds, checked before anything starts: the cycles, plans
    and contracts (`load_tariff`) and the bill's terms (meterlake.core.bill)."""
    from meterlake.core.bill import load_bill_terms

    load_tariff(path, zone)
    load_bill_terms(path)
