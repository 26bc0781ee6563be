"""A synthetic month of residential meter readings, in the classroom publisher's format.

Each meter is a home with its own habits: a night base load and a fridge that
cycles, a morning and an evening peak of activity (lights, TV, cooking), and
appliance bursts (kettle, microwave, oven, washing machine, dishwasher, vacuum
cleaner, an electric water heater in some homes, an electric heater on cold
evenings in others). Power is modelled minute by minute in kW, capped at the
home's contracted power (3.45 to 6.9 kVA, always far below the pipeline's
implausible-jump limit); the register is its integral, read about every
`cadence_s` seconds with a few seconds of jitter, with occasional missed
readings and short outages (a few minutes to two hours) in which no reading is
sent while the register keeps counting.

Output lines are `YYYY-MM-DD HH:MM:SS;sensor_id;energy`, sorted by timestamp
then sensor id, no header. Registers are kept as integer watt-hours and written
with exactly 3 decimals (kWh), so they never decrease.

Time: readings are taken at real instants, counted from the local midnight
of the first day, and written as Europe/Lisbon wall-clock time, naive, as the
classroom publisher's files are. Across a legal-time switch the file follows
the wall clock: in March it skips 01:00-01:59, and in October the repeated
hour 01:00-01:59 is written twice, the second time (winter time) with its
offset (`2024-10-27T01:15:00+00:00`), so that every timestamp names exactly
one instant (docs/semantics.md reads a naive repeated hour as its first
occurrence).

Everything is deterministic for a seed: numpy's `default_rng(seed)`, with one
spawned stream per meter, so meter S01 is the same home whatever the number of
meters.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from meterlake.core.errors import MeterlakeError

ZONE = "Europe/Lisbon"  # the meters' wall clock (the tariff's zone)

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400
MINUTES_PER_DAY = 1_440
CONTRACTED_KVA = (3.45, 4.6, 5.75, 6.9)  # common Portuguese BTN contracted powers
CONTRACTED_WEIGHTS = (0.25, 0.35, 0.25, 0.15)


@dataclass(frozen=True)
class MonthSpec:
    """What to generate: how many meters, which days, how often they read."""

    meters: int = 11
    days: int = 29
    start: str = "2024-02-01"
    cadence_s: float = 60.0
    seed: int = 42
    jitter_s: float = 5.0  # each reading is up to this many seconds early or late
    missed_fraction: float = 0.003  # readings lost one at a time
    outages_per_day: float = 0.12  # per meter: about 3.5 outages in a month

    def __post_init__(self) -> None:
        if self.meters < 1:
            raise MeterlakeError(f"--meters must be at least 1, not {self.meters}")
        if self.days < 1:
            raise MeterlakeError(f"--days must be at least 1, not {self.days}")
        if not self.cadence_s >= 1.0:
            raise MeterlakeError(f"--cadence must be at least 1 second, not {self.cadence_s}")
        if self.jitter_s < 0 or not 0 <= self.missed_fraction < 1 or self.outages_per_day < 0:
            raise MeterlakeError("jitter, missed fraction and outage rate must be non-negative")
        first_day(self.start)

    @property
    def seconds(self) -> int:
        return self.days * SECONDS_PER_DAY


@dataclass(frozen=True)
class Readings:
    """A month of readings, sorted by (second, meter): parallel arrays."""

    sensor_ids: tuple[str, ...]
    start: str
    second: np.ndarray  # int64, seconds since the naive local start
    meter: np.ndarray  # int64, index into sensor_ids
    energy_wh: np.ndarray  # int64, the register in watt-hours

    def __len__(self) -> int:
        return int(self.second.size)


@dataclass(frozen=True)
class Habits:
    """One home's way of using electricity (kW, hours of the day)."""

    contracted_kw: float
    household: float  # more people, more activity and more appliance runs
    base_kw: float
    fridge_kw: float
    fridge_period_min: float
    fridge_duty: float
    wake_h: float
    morning_kw: float
    daytime_kw: float
    evening_h: float
    evening_sigma_h: float
    evening_kw: float
    bedtime_h: float
    heater_kw: float  # 0: no electric heater
    heater_cold_days: float
    water_heater_kw: float  # 0: gas for hot water


def first_day(start: str) -> date:
    try:
        return date.fromisoformat(start)
    except ValueError:
        raise MeterlakeError(f"--start must be a date YYYY-MM-DD, not {start!r}") from None


def sensor_ids(meters: int) -> tuple[str, ...]:
    """S01..S11; zero-padded wider for more meters so that ids sort like numbers."""
    width = max(2, len(str(meters)))
    return tuple(f"S{i:0{width}d}" for i in range(1, meters + 1))


def draw_habits(rng: np.random.Generator) -> Habits:
    has_heater = rng.random() < 0.55
    has_water_heater = rng.random() < 0.3
    return Habits(
        contracted_kw=float(rng.choice(CONTRACTED_KVA, p=CONTRACTED_WEIGHTS)),
        household=float(np.clip(rng.lognormal(-0.15, 0.3), 0.5, 1.8)),
        base_kw=rng.uniform(0.05, 0.14),
        fridge_kw=rng.uniform(0.06, 0.12),
        fridge_period_min=rng.uniform(40, 70),
        fridge_duty=rng.uniform(0.3, 0.5),
        wake_h=rng.uniform(6.3, 8.2),
        morning_kw=rng.uniform(0.15, 0.5),
        daytime_kw=rng.uniform(0.03, 0.25),
        evening_h=rng.uniform(19.5, 21.0),
        evening_sigma_h=rng.uniform(1.0, 1.6),
        evening_kw=rng.uniform(0.25, 0.9),
        bedtime_h=rng.uniform(22.5, 24.5),
        heater_kw=rng.uniform(1.0, 2.0) if has_heater else 0.0,
        heater_cold_days=rng.uniform(0.4, 0.9),
        water_heater_kw=rng.uniform(1.5, 2.5) if has_water_heater else 0.0,
    )


def _bump(hours: np.ndarray, centre_h: float, sigma_h: float) -> np.ndarray:
    """A Gaussian bump over the hours of the day, wrapping around midnight."""
    delta = (hours - centre_h + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (delta / sigma_h) ** 2)


def activity_kw(habits: Habits, hours: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Lights, TV, computers and cooking on the hob: the daily shape of a home."""
    morning = habits.morning_kw * _bump(hours, habits.wake_h + 0.7, 0.6)
    evening = habits.evening_kw * _bump(hours, habits.evening_h, habits.evening_sigma_h)
    awake = (hours > habits.wake_h + 1.5) & (hours < habits.evening_h - 1.0)
    daytime = np.where(awake, habits.daytime_kw * np.where(weekend, 2.0, 1.0), 0.0)
    asleep = (hours - habits.bedtime_h) % 24.0 < (habits.wake_h - habits.bedtime_h) % 24.0
    return np.where(asleep, 0.0, habits.household * (morning + evening + daytime))


def _time_of_day(centres_h: tuple[float, ...], sigma_h: float) -> np.ndarray:
    """Probabilities over the minutes of a day, peaking at the given hours."""
    hours = np.arange(MINUTES_PER_DAY) / 60.0
    density = sum(_bump(hours, c, sigma_h) for c in centres_h) + 1e-3
    return density / density.sum()


@dataclass(frozen=True)
class Appliance:
    """Runs of an appliance: how often, when, and its phases (kW for a few minutes each)."""

    name: str
    per_day: tuple[float, float]  # the home's rate is drawn from this range
    centres_h: tuple[float, ...]  # preferred hours; negative: relative to waking up
    sigma_h: float
    phases: tuple[tuple[tuple[float, float], tuple[float, float]], ...]  # (kW range, min range)


APPLIANCES = (
    Appliance("kettle", (0.5, 3.0), (-0.3, 16.5, 20.0), 1.0, (((1.8, 2.2), (2, 4)),)),
    Appliance("microwave", (0.3, 2.0), (13.0, 19.8), 1.5, (((0.9, 1.2), (2, 7)),)),
    Appliance("oven", (0.15, 0.8), (12.7, 19.6), 0.6, (((1.8, 2.4), (20, 60)),)),
    Appliance("washing machine", (0.15, 0.6), (10.0, 19.0), 2.0,
              (((1.9, 2.1), (12, 18)), ((0.2, 0.4), (40, 60)))),
    Appliance("dishwasher", (0.0, 0.8), (21.8,), 0.8,
              (((1.7, 1.9), (20, 30)), ((0.1, 0.2), (50, 70)))),
    Appliance("vacuum cleaner, iron", (0.05, 0.3), (11.0, 17.0), 2.0, (((1.2, 2.0), (15, 40)),)),
)
WATER_HEATER = Appliance("water heater", (1.0, 2.0), (-0.5, 21.5), 0.7, (((1.5, 2.5), (30, 60)),))


def appliance_runs(
    appliance: Appliance, habits: Habits, rng: np.random.Generator, days: int
) -> np.ndarray:
    """One appliance's power in each minute of the period, kW."""
    power = np.zeros(days * MINUTES_PER_DAY + 1)
    per_day = rng.uniform(*appliance.per_day) * habits.household
    count = rng.poisson(per_day * days)
    centres = tuple(habits.wake_h - c if c < 0 else c for c in appliance.centres_h)
    when = _time_of_day(centres, appliance.sigma_h)
    start = rng.integers(0, days, count) * MINUTES_PER_DAY + rng.choice(
        MINUTES_PER_DAY, size=count, p=when
    )
    for kw_range, minutes in appliance.phases:
        kw = rng.uniform(*kw_range)
        end = np.minimum(start + np.round(rng.uniform(*minutes, count)).astype(np.int64),
                         days * MINUTES_PER_DAY)
        np.add.at(power, start, kw)
        np.add.at(power, end, -kw)
        start = end
    return np.cumsum(power[:-1])


def power_kw(habits: Habits, rng: np.random.Generator, days: int, weekday0: int) -> np.ndarray:
    """The home's mean power in each minute of the period, kW."""
    minute = np.arange(days * MINUTES_PER_DAY)
    day = minute // MINUTES_PER_DAY
    hours = (minute % MINUTES_PER_DAY) / 60.0
    weekend = (weekday0 + day) % 7 >= 5

    fridge_on = (minute / habits.fridge_period_min + rng.random()) % 1.0 < habits.fridge_duty
    daily_mood = rng.lognormal(0.0, 0.15, days)[day]
    flicker = rng.lognormal(0.0, 0.35, minute.size)
    power = (
        habits.base_kw
        + habits.fridge_kw * fridge_on
        + activity_kw(habits, hours, weekend) * daily_mood * flicker
    )
    if habits.heater_kw:  # on cold evenings, thermostat cycling
        cold = rng.random(days) < habits.heater_cold_days
        on_h = rng.uniform(18.0, 19.5, days)[day]
        off_h = rng.uniform(22.0, 23.5, days)[day]
        cycling = (minute / 25.0 + rng.random()) % 1.0 < 0.65
        power += habits.heater_kw * (cold[day] & (hours >= on_h) & (hours < off_h) & cycling)
    for appliance in APPLIANCES:
        power += appliance_runs(appliance, habits, rng, days)
    if habits.water_heater_kw:  # reheats after the morning and evening showers
        kw = habits.water_heater_kw
        heater = replace(WATER_HEATER, phases=(((kw, kw), WATER_HEATER.phases[0][1]),))
        power += appliance_runs(heater, habits, rng, days)
    return np.minimum(power, habits.contracted_kw)


def reading_seconds(spec: MonthSpec, rng: np.random.Generator) -> np.ndarray:
    """When one meter reads: about every cadence_s, jittered, minus misses and outages."""
    cadence = spec.cadence_s
    jitter = min(spec.jitter_s, 0.25 * cadence)
    count = math.ceil(spec.seconds / cadence) + 1
    nominal = rng.uniform(0.0, cadence) + cadence * np.arange(count)
    second = np.floor(nominal + rng.uniform(-jitter, jitter, count)).astype(np.int64)
    keep = (second >= 0) & (second < spec.seconds) & (rng.random(count) >= spec.missed_fraction)
    keep[1:] &= second[1:] > second[:-1]  # whole seconds: never two readings in one second
    outages = rng.poisson(spec.outages_per_day * spec.days)
    begin = rng.uniform(0, spec.seconds, outages)
    length = np.clip(rng.lognormal(np.log(20 * 60), 0.9, outages), 120, 7_200)
    for b, n in zip(begin, length, strict=True):
        keep &= (second < b) | (second >= b + n)
    return second[keep]


def register_wh(power: np.ndarray, start_wh: int, second: np.ndarray) -> np.ndarray:
    """The register at each second: the start value plus the integral of power, in Wh."""
    cumulative_wh = np.concatenate(([0.0], np.cumsum(power) * (1000.0 / 60.0)))
    at = np.interp(second / 60.0, np.arange(cumulative_wh.size), cumulative_wh)
    return start_wh + np.round(at).astype(np.int64)


def starting_registers(rngs: list[np.random.Generator]) -> list[int]:
    """Each meter's first register value: 300 to 60,000 kWh (log-uniform), all distinct."""
    values: list[int] = []
    for rng in rngs:
        value = round(1000 * math.exp(rng.uniform(math.log(300), math.log(60_000))))
        while value in values:
            value += 1_000
        values.append(value)
    return values


def month_readings(spec: MonthSpec) -> Readings:
    """All the readings of the month, as arrays (the pure part of `write_readings`)."""
    day0 = first_day(spec.start)
    rngs = np.random.default_rng(spec.seed).spawn(spec.meters)
    starts = starting_registers(rngs)
    seconds, meters, energies = [], [], []
    for index, (rng, start_wh) in enumerate(zip(rngs, starts, strict=True)):
        habits = draw_habits(rng)
        power = power_kw(habits, rng, spec.days, day0.weekday())
        second = reading_seconds(spec, rng)
        seconds.append(second)
        meters.append(np.full(second.size, index, dtype=np.int64))
        energies.append(register_wh(power, start_wh, second))
    second = np.concatenate(seconds)
    meter = np.concatenate(meters)
    order = np.lexsort((meter, second))
    return Readings(
        sensor_ids=sensor_ids(spec.meters),
        start=spec.start,
        second=second[order],
        meter=meter[order],
        energy_wh=np.concatenate(energies)[order],
    )


def wall_clock_stamps(start: str, second: np.ndarray, zone: str = ZONE) -> list[str]:
    """Local wall-clock timestamps of instants `second` s after the local midnight of
    `start`; the second occurrence of a repeated hour carries its offset."""
    tz = ZoneInfo(zone)
    origin = datetime.combine(first_day(start), time()).replace(tzinfo=tz).astimezone(UTC)
    hours = second // 3600
    offset_s = np.zeros_like(second)
    repeated = np.zeros(second.shape, dtype=bool)
    for hour in np.unique(hours).tolist():  # offsets change on the hour: one lookup an hour
        local = (origin + timedelta(hours=hour)).astimezone(tz)
        offset = local.utcoffset()
        assert offset is not None
        in_hour = hours == hour
        offset_s[in_hour] = int(offset.total_seconds())
        repeated[in_hour] = bool(local.fold)
    utc = np.datetime64(origin.replace(tzinfo=None), "s") + second.astype("timedelta64[s]")
    local_stamps = np.datetime_as_string(utc + offset_s.astype("timedelta64[s]"), unit="s")
    stamps = [f"{s[:10]} {s[11:]}" for s in local_stamps.tolist()]
    for i in np.flatnonzero(repeated).tolist():
        sign = "+" if offset_s[i] >= 0 else "-"
        hh, mm = divmod(abs(int(offset_s[i])) // 60, 60)
        stamps[i] = f"{stamps[i][:10]}T{stamps[i][11:]}{sign}{hh:02d}:{mm:02d}"
    return stamps


def format_lines(readings: Readings) -> list[str]:
    """`YYYY-MM-DD HH:MM:SS;sensor_id;energy` lines, energy in kWh with 3 decimals."""
    stamps = wall_clock_stamps(readings.start, readings.second)
    ids = readings.sensor_ids
    kwh = (readings.energy_wh // 1000).tolist()
    wh = (readings.energy_wh % 1000).tolist()
    meter = readings.meter.tolist()
    return [
        f"{s};{ids[m]};{k}.{w:03d}" for s, m, k, w in zip(stamps, meter, kwh, wh, strict=True)
    ]


def write_readings(spec: MonthSpec, out: Path) -> int:
    """Generate the month and write it to `out`; returns the number of lines."""
    lines = format_lines(month_readings(spec))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines))
            if lines:
                f.write("\n")
    except OSError as exc:
        raise MeterlakeError(f"cannot write {out}: {exc.strerror or exc}") from None
    log.info("wrote %d readings of %d meters to %s", len(lines), spec.meters, out)
    return len(lines)
