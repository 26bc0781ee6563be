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

Fleets: only the random draws are made meter by meter (each from its own
stream); the power model, the registers and the text are computed in numpy for
blocks of meters at once (`BLOCK_CELLS` minutes of power per block) and written
a million lines at a time (`readings_text`), element by element the same
arithmetic as computing each meter alone, so the files are the same bytes as
before the blocks (the default month's checksum is held by
tests/tools/test_generate.py). Memory: about 24 bytes a reading plus a block.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np

from meterlake.core.errors import MeterlakeError
from meterlake.tools import readings_text

ZONE = "Europe/Lisbon"  # the meters' wall clock (the tariff's zone)

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400
MINUTES_PER_DAY = 1_440
CONTRACTED_KVA = (3.45, 4.6, 5.75, 6.9)  # common Portuguese BTN contracted powers
CONTRACTED_WEIGHTS = (0.25, 0.35, 0.25, 0.15)
# What rng.choice(CONTRACTED_KVA, p=CONTRACTED_WEIGHTS) searches its one draw in.
CONTRACTED_CDF = np.cumsum(CONTRACTED_WEIGHTS) / np.cumsum(CONTRACTED_WEIGHTS)[-1]
BLOCK_CELLS = 2_000_000  # minutes of power computed at once (homes x minutes of the period)


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
        contracted_kw=CONTRACTED_KVA[int(CONTRACTED_CDF.searchsorted(rng.random(), "right"))],
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


def _bump(hours: np.ndarray, centre_h: np.ndarray | float, sigma_h: np.ndarray | float
          ) -> np.ndarray:
    """A Gaussian bump over the hours of the day, wrapping around midnight."""
    delta = (hours - centre_h + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (delta / sigma_h) ** 2)


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


# --------------------------------------------------------------------------- draws
#
# Each meter draws its randomness from its own stream, in one fixed order (the
# home's habits, then its power, then when it reads), so a meter is the same home
# whatever the number of meters. Only the draws are made meter by meter; the
# arithmetic on them runs over a block of meters at once (`block_power`,
# `block_readings`), element by element the same operations, so the numbers are
# those of computing each meter alone.


@dataclass(frozen=True)
class Runs:
    """One appliance's runs in one home: the day and the draw that picks the minute of
    each start, and each phase's power and lengths in minutes."""

    day: np.ndarray  # int64 per run
    pick: np.ndarray  # uniform in [0, 1) per run: the minute of the day, by `_time_of_day`
    phases: tuple[tuple[float, np.ndarray], ...]  # (kW, minutes per run)


@dataclass(frozen=True)
class Heater:
    """An electric heater's cold days and hours: on cold evenings, thermostat cycling."""

    cold: np.ndarray  # bool per day
    on_h: np.ndarray  # per day
    off_h: np.ndarray  # per day
    phase: float  # of the thermostat's 25-minute cycle


@dataclass(frozen=True)
class Timing:
    """When a meter reads: the first nominal instant, the jitter of each reading, which
    ones are lost, and the outages (begin and length, seconds)."""

    first_s: float
    shake_s: np.ndarray
    sent: np.ndarray  # bool: not lost one at a time
    outage_begin_s: np.ndarray
    outage_length_s: np.ndarray


@dataclass(frozen=True)
class Home:
    """Everything random about one meter over the period."""

    start_wh: int
    habits: Habits
    fridge_phase: float
    mood: np.ndarray  # per day
    flicker: np.ndarray  # per minute
    heater: Heater | None
    runs: tuple[Runs, ...]  # one per appliance of APPLIANCES, then the water heater if any
    timing: Timing


def _when_cdf(wake_h: np.ndarray, appliance: Appliance) -> np.ndarray:
    """Per home (rows, waking at `wake_h`), the cumulative probability over the minutes
    of a day that a run of `appliance` starts, peaking at its preferred hours; one row
    for all homes when none of the hours is relative to waking up."""
    hours = np.arange(MINUTES_PER_DAY) / 60.0
    # A preferred hour relative to waking up differs by home; a fixed one is one row.
    density = sum(
        _bump(hours, wake_h - c if c < 0 else c, appliance.sigma_h) for c in appliance.centres_h
    )
    density = np.atleast_2d(density + 1e-3)
    p = density / density.sum(axis=1, keepdims=True)
    cdf = p.cumsum(axis=1)
    cdf /= cdf[:, -1:]
    return cdf


def draw_runs(appliance: Appliance, habits: Habits, rng: np.random.Generator, days: int) -> Runs:
    per_day = rng.uniform(*appliance.per_day) * habits.household
    count = rng.poisson(per_day * days)
    day = rng.integers(0, days, count)
    pick = rng.random(count)  # what rng.choice(MINUTES_PER_DAY, count, p=...) draws
    phases = tuple(
        (rng.uniform(*kw_range), rng.uniform(*minutes, count))
        for kw_range, minutes in appliance.phases
    )
    return Runs(day, pick, phases)


def draw_timing(spec: MonthSpec, rng: np.random.Generator) -> Timing:
    cadence = spec.cadence_s
    jitter = min(spec.jitter_s, 0.25 * cadence)
    count = reading_slots(spec)
    first = rng.uniform(0.0, cadence)
    shake = rng.uniform(-jitter, jitter, count)
    sent = rng.random(count) >= spec.missed_fraction
    outages = rng.poisson(spec.outages_per_day * spec.days)
    begin = rng.uniform(0, spec.seconds, outages)
    length = np.clip(rng.lognormal(np.log(20 * 60), 0.9, outages), 120, 7_200)
    return Timing(first, shake, sent, begin, length)


def reading_slots(spec: MonthSpec) -> int:
    return math.ceil(spec.seconds / spec.cadence_s) + 1


def draw_home(spec: MonthSpec, rng: np.random.Generator, start_wh: int) -> Home:
    """One meter's draws, in the order of its stream."""
    days = spec.days
    habits = draw_habits(rng)
    fridge_phase = rng.random()
    mood = rng.lognormal(0.0, 0.15, days)
    flicker = rng.lognormal(0.0, 0.35, days * MINUTES_PER_DAY)
    heater = None
    if habits.heater_kw:
        heater = Heater(
            cold=rng.random(days) < habits.heater_cold_days,
            on_h=rng.uniform(18.0, 19.5, days),
            off_h=rng.uniform(22.0, 23.5, days),
            phase=rng.random(),
        )
    runs = [draw_runs(appliance, habits, rng, days) for appliance in APPLIANCES]
    if habits.water_heater_kw:  # reheats after the morning and evening showers
        kw = habits.water_heater_kw
        heater_runs = replace(WATER_HEATER, phases=(((kw, kw), WATER_HEATER.phases[0][1]),))
        runs.append(draw_runs(heater_runs, habits, rng, days))
    return Home(start_wh, habits, fridge_phase, mood, flicker, heater, tuple(runs),
                draw_timing(spec, rng))


def meter_rng(seed: int, index: int) -> np.random.Generator:
    """Meter `index`'s own stream: the one `default_rng(seed).spawn(n)[index]` gives."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index,))))


def starting_register(rng: np.random.Generator, taken: set[int]) -> int:
    """A meter's first register value: 300 to 60,000 kWh (log-uniform), distinct from
    those of the meters before it (`taken`, which it joins)."""
    value = round(1000 * math.exp(rng.uniform(math.log(300), math.log(60_000))))
    while value in taken:
        value += 1_000
    taken.add(value)
    return value


# --------------------------------------------------------------------------- blocks


def _column(homes: Sequence[Home], name: str) -> np.ndarray:
    """One habit of every home of the block, as a column."""
    return np.array([getattr(h.habits, name) for h in homes])[:, None]


def activity_kw(homes: Sequence[Home], hours: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Lights, TV, computers and cooking on the hob: the daily shape of each home (rows)."""
    wake, evening_h = _column(homes, "wake_h"), _column(homes, "evening_h")
    days = hours.size // MINUTES_PER_DAY  # the bumps repeat every day: computed for one
    morning = _column(homes, "morning_kw") * np.tile(
        _bump(hours[:MINUTES_PER_DAY], wake + 0.7, 0.6), days)
    evening = _column(homes, "evening_kw") * np.tile(
        _bump(hours[:MINUTES_PER_DAY], evening_h, _column(homes, "evening_sigma_h")), days)
    awake = (hours > wake + 1.5) & (hours < evening_h - 1.0)
    daytime = np.where(awake, _column(homes, "daytime_kw") * np.where(weekend, 2.0, 1.0), 0.0)
    bedtime = _column(homes, "bedtime_h")
    asleep = (hours - bedtime) % 24.0 < (wake - bedtime) % 24.0
    return np.where(asleep, 0.0, _column(homes, "household") * (morning + evening + daytime))


def runs_kw(runs: Sequence[Runs], cdf: np.ndarray, days: int) -> np.ndarray:
    """Each home's (rows) power of one appliance in each minute, kW: its runs' phases
    added at their starts and taken away at their ends, then summed up."""
    width = days * MINUTES_PER_DAY + 1
    counts = np.array([r.pick.size for r in runs])
    row = np.repeat(np.arange(len(runs)), counts)
    if cdf.shape[0] == 1:  # the same hours for every home
        minute = cdf[0].searchsorted(np.concatenate([r.pick for r in runs]), "right")
    else:
        minute = np.concatenate([c.searchsorted(r.pick, "right")
                                 for r, c in zip(runs, cdf, strict=True)])
    start = np.concatenate([r.day for r in runs]) * MINUTES_PER_DAY + minute
    # Within a home the steps come in its own order (each phase's starts, then its
    # ends), so each minute's sum is added up as for that home alone.
    cells, weights = [], []
    for phase in range(len(runs[0].phases)):
        kw = np.repeat([r.phases[phase][0] for r in runs], counts)
        minutes = np.concatenate([r.phases[phase][1] for r in runs])
        end = np.minimum(start + np.round(minutes).astype(np.int64), days * MINUTES_PER_DAY)
        cells += [row * width + start, row * width + end]
        weights += [kw, -kw]
        start = end
    steps = np.bincount(np.concatenate(cells), np.concatenate(weights), len(runs) * width)
    return np.cumsum(steps.reshape(len(runs), width)[:, :-1], axis=1)


def block_power(homes: Sequence[Home], days: int, weekday0: int) -> np.ndarray:
    """Each home's (rows) mean power in each minute of the period, kW."""
    minute = np.arange(days * MINUTES_PER_DAY)
    day = minute // MINUTES_PER_DAY
    hours = (minute % MINUTES_PER_DAY) / 60.0
    weekend = (weekday0 + day) % 7 >= 5

    phase = np.array([h.fridge_phase for h in homes])[:, None]
    fridge_on = (minute / _column(homes, "fridge_period_min") + phase) % 1.0 < _column(
        homes, "fridge_duty")
    daily_mood = np.stack([h.mood for h in homes])[:, day]
    flicker = np.stack([h.flicker for h in homes])
    power = (
        _column(homes, "base_kw")
        + _column(homes, "fridge_kw") * fridge_on
        + activity_kw(homes, hours, weekend) * daily_mood * flicker
    )
    heated = [i for i, h in enumerate(homes) if h.heater is not None]
    if heated:  # on cold evenings, thermostat cycling
        heaters = [h.heater for h in homes if h.heater is not None]
        cold = np.stack([h.cold for h in heaters])[:, day]
        on_h = np.stack([h.on_h for h in heaters])[:, day]
        off_h = np.stack([h.off_h for h in heaters])[:, day]
        cycling = (minute / 25.0 + np.array([h.phase for h in heaters])[:, None]) % 1.0 < 0.65
        on = cold & (hours >= on_h) & (hours < off_h) & cycling
        power[heated] += _column([homes[i] for i in heated], "heater_kw") * on
    wake = _column(homes, "wake_h")
    for k, appliance in enumerate(APPLIANCES):
        power += runs_kw([h.runs[k] for h in homes], _when_cdf(wake, appliance), days)
    hot = [i for i, h in enumerate(homes) if h.habits.water_heater_kw]
    if hot:
        cdf = _when_cdf(wake[hot], WATER_HEATER)
        power[hot] += runs_kw([homes[i].runs[-1] for i in hot], cdf, days)
    return np.minimum(power, _column(homes, "contracted_kw"))


def block_readings(spec: MonthSpec, homes: Sequence[Home], power: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The readings of a block of homes: (row, second, register in Wh), home by home,
    each in time order. A meter reads about every cadence_s, jittered, minus misses
    and outages; its register is the start value plus the integral of its power."""
    count = reading_slots(spec)
    nominal = np.array([h.timing.first_s for h in homes])[:, None] + spec.cadence_s * np.arange(
        count)
    second = np.floor(nominal + np.stack([h.timing.shake_s for h in homes])).astype(np.int64)
    keep = (second >= 0) & (second < spec.seconds) & np.stack([h.timing.sent for h in homes])
    keep[:, 1:] &= second[:, 1:] > second[:, :-1]  # whole seconds: never two in one second
    for index, home in enumerate(homes):
        for b, n in zip(home.timing.outage_begin_s, home.timing.outage_length_s, strict=True):
            keep[index] &= (second[index] < b) | (second[index] >= b + n)
    row, column = np.nonzero(keep)
    kept = second[row, column]
    return row, kept, register_wh(power, np.array([h.start_wh for h in homes]), row, kept)


def register_wh(power: np.ndarray, start_wh: np.ndarray, row: np.ndarray, second: np.ndarray
                ) -> np.ndarray:
    """The register of home `row` at `second`: its start value plus the integral of its
    power (minutes, kW) in Wh, interpolated within the minute as `np.interp` does."""
    cumulative_wh = np.zeros((power.shape[0], power.shape[1] + 1))
    cumulative_wh[:, 1:] = np.cumsum(power, axis=1) * (1000.0 / 60.0)
    x = second / 60.0
    j = np.floor(x).astype(np.int64)
    low = cumulative_wh[row, j]
    high = cumulative_wh[row, np.minimum(j + 1, power.shape[1])]
    at = np.where(x == j, low, (high - low) * (x - j) + low)
    return start_wh[row] + np.round(at).astype(np.int64)


def block_size(spec: MonthSpec) -> int:
    """Homes computed together: about BLOCK_CELLS minutes of power in one block."""
    return max(1, min(spec.meters, BLOCK_CELLS // (spec.days * MINUTES_PER_DAY)))


def month_readings(spec: MonthSpec) -> Readings:
    """All the readings of the month, as arrays (the pure part of `write_readings`)."""
    weekday0 = first_day(spec.start).weekday()
    taken: set[int] = set()
    seconds, meters, energies = [], [], []
    size = block_size(spec)
    for first in range(0, spec.meters, size):
        homes = []
        for index in range(first, min(first + size, spec.meters)):
            rng = meter_rng(spec.seed, index)
            homes.append(draw_home(spec, rng, starting_register(rng, taken)))
        row, second, energy = block_readings(spec, homes, block_power(homes, spec.days, weekday0))
        seconds.append(second)
        meters.append(row + first)
        energies.append(energy)
    second = np.concatenate(seconds)
    order = np.argsort(second, kind="stable")  # meters come in order: ties stay by meter
    return Readings(
        sensor_ids=sensor_ids(spec.meters),
        start=spec.start,
        second=second[order],
        meter=np.concatenate(meters)[order],
        energy_wh=np.concatenate(energies)[order],
    )


def format_lines(readings: Readings) -> list[str]:
    """`YYYY-MM-DD HH:MM:SS;sensor_id;energy` lines, energy in kWh with 3 decimals."""
    text = b"".join(readings_text.encode_lines(readings.start, readings.sensor_ids,
                                               readings.second, readings.meter,
                                               readings.energy_wh, ZONE))
    return text.decode("utf-8").splitlines()


def write_readings(spec: MonthSpec, out: Path) -> int:
    """Generate the month and write it to `out`; returns the number of lines."""
    readings = month_readings(spec)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as f:
            for chunk in readings_text.encode_lines(readings.start, readings.sensor_ids,
                                                    readings.second, readings.meter,
                                                    readings.energy_wh, ZONE):
                f.write(chunk)
    except OSError as exc:
        raise MeterlakeError(f"cannot write {out}: {exc.strerror or exc}") from None
    log.info("wrote %d readings of %d meters to %s", len(readings), spec.meters, out)
    return len(readings)
