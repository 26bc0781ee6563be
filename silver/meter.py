"""One meter's readings, one at a time -> accepted readings, pieces, flags.

The per-sensor state machine of rules 6-11 (docs/semantics.md): too_late, ambiguous_time,
duplicate, conflicting_duplicate, implausible_jump, counter_decrease, and the
retraction of the interval a late reading falls into. Pure Python: Spark's
state store holds a `Window` between micro-batches; the tests drive it directly.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np

from meterlake.core.tariff import Tariff
from silver.message import Reading
from silver.reasons import (
    AMBIGUOUS_TIME,
    CONFLICTING_DUPLICATE,
    COUNTER_DECREASE,
    DUPLICATE,
    IMPLAUSIBLE_JUMP,
    TOO_LATE,
)
from silver.split import Piece, split_at_half_hours

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR


@dataclass(frozen=True)
class MeterRules:
    allowed_lateness_us: int
    max_power_kw: float
    tariff: Tariff


@dataclass
class Window:
    """The sensor's accepted readings of the last allowed-lateness span, plus
    the one before them (the baseline a late reading may need), sorted by time."""

    ts_us: list[int] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)

    @property
    def latest_us(self) -> int | None:
        return self.ts_us[-1] if self.ts_us else None


@dataclass(frozen=True)
class Flag:
    """A reading judged by the state: rejected (quarantined) or an anomaly."""

    reason: str
    detail: str


@dataclass
class Verdict:
    """What one reading produced."""

    accepted: bool
    flags: list[Flag] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)


def _fmt(ts_us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_us / 1e6, UTC).isoformat(timespec="seconds")


def judge(
    window: Window, sensor_id: str, ts_us: int, energy: float, rules: MeterRules,
    ambiguous: bool = False,
) -> Verdict:  # fmt: skip
    """Apply one reading to the window (mutated in place) and return what it produced.
    ambiguous: a naive time of the repeated hour left at its first occurrence
    (place_repeated); landing on a reading already there, the register cannot tell a
    repeat from the second occurrence: `ambiguous_time`, not a duplicate."""
    latest = window.latest_us
    if latest is not None and ts_us < latest - rules.allowed_lateness_us:
        return Verdict(
            False, [Flag(TOO_LATE.code, f"{(latest - ts_us) / 1e6:.0f} s behind {_fmt(latest)}")]
        )
    i = bisect_left(window.ts_us, ts_us)
    if i < len(window.ts_us) and window.ts_us[i] == ts_us:
        if ambiguous:
            return Verdict(False, [Flag(
                AMBIGUOUS_TIME.code, "a repeated local time the register cannot place")])
        if window.energy[i] == energy:
            return Verdict(False, [Flag(DUPLICATE.code, "same reading seen before")])
        first = f"first reading had energy {window.energy[i]!r}"
        return Verdict(False, [Flag(CONFLICTING_DUPLICATE.code, first)])
    # Both intervals the reading makes are judged: from its predecessor and, for a
    # late reading, to its successor (semantics §7: the same rules as in order).
    has_prev, has_next = i > 0, i < len(window.ts_us)
    ts, en = window.ts_us, window.energy
    jump = (has_prev and _jump(ts[i - 1], en[i - 1], ts_us, energy, rules, "since")) or (
        has_next and _jump(ts_us, energy, ts[i], en[i], rules, "until")
    )
    if jump:
        return Verdict(False, [jump])
    flags: list[Flag] = []
    if has_prev and energy < en[i - 1]:
        flags.append(
            Flag(COUNTER_DECREASE.code, f"register fell by {en[i - 1] - energy:.3f} kWh; counts 0")
        )

    window.ts_us.insert(i, ts_us)
    window.energy.insert(i, energy)
    pieces: list[Piece] = []
    if has_prev and has_next:  # a late reading: retract the interval it falls into
        pieces += split_at_half_hours(
            sensor_id, ts[i - 1], en[i - 1], ts[i + 1], en[i + 1], rules.tariff, -1
        )
    if has_prev:
        pieces += split_at_half_hours(sensor_id, ts[i - 1], en[i - 1], ts_us, energy, rules.tariff)
    if has_next:
        pieces += split_at_half_hours(sensor_id, ts_us, energy, ts[i + 1], en[i + 1], rules.tariff)
        if en[i + 1] < energy:
            flags.append(
                Flag(
                    COUNTER_DECREASE.code,
                    f"the reading at {_fmt(ts[i + 1])} is lower; that interval counts 0",
                )
            )
    trim(window, rules.allowed_lateness_us)
    return Verdict(True, flags, pieces)


def place_repeated(
    window: Window, readings: list[tuple[int, Reading]]
) -> list[tuple[int, Reading]]:
    """Place the naive times of October's repeated hour (Reading.repeat_us > 0, read
    as their first occurrence) at the occurrence the register allows, and return the
    readings sorted by their instants (ties in their order).

    A register only rises: a reading of the repeated hour is in the second pass when
    some reading of its meter (in the window or the batch, another naive one at its
    first occurrence) shows a lower register at or after its first occurrence, within
    the two passes. The lowest register for which that holds starts the second pass:
    every naive reading of that hour with a register as high or higher goes there.
    The others stay at their first occurrence (judge then quarantines as
    `ambiguous_time` one that lands on a reading already there). The oracle
    (oracle/sql.py) places them by the same rule."""
    ambiguous = [k for k, (_, r) in enumerate(readings) if r.repeat_us]
    if not ambiguous:
        return readings
    instants = np.array(window.ts_us + [r.ts_us for _, r in readings], dtype=np.int64)
    registers = np.array(window.energy + [r.energy for _, r in readings], dtype=np.float64)
    mine = np.array(ambiguous, dtype=np.int64) + len(window.ts_us)
    t0, e0 = instants[mine], registers[mine]
    length = np.array([readings[k][1].repeat_us for k in ambiguous], dtype=np.int64)
    others = np.ones((len(mine), len(instants)), dtype=bool)
    others[np.arange(len(mine)), mine] = False
    near = (instants >= t0[:, None]) & (instants < (t0 + 2 * length)[:, None])
    behind = (near & others & (registers < e0[:, None])).any(axis=1)
    placed = list(readings)
    for group in _passes(t0):  # one repeated hour each
        second = behind[group]
        if second.any():
            start = e0[group][second].min()
            for k in group[e0[group] >= start]:
                i, r = readings[ambiguous[k]]
                placed[ambiguous[k]] = (i, Reading(r.sensor_id, r.ts_us + r.repeat_us, r.energy))
    return sorted(placed, key=lambda x: x[1].ts_us)


def _passes(t0: np.ndarray) -> list[np.ndarray]:
    """The positions of readings of the same repeated hour (the same UTC day of their
    first occurrence: the oracle groups them so too), a group each."""
    days = t0 // US_PER_DAY
    return [np.flatnonzero(days == day) for day in np.unique(days)]


def _jump(
    t0: int, e0: float, t1: int, e1: float, rules: MeterRules, relation: str
) -> Flag | None:
    """implausible_jump when the rise from (t0, e0) to (t1, e1) needs more than max_power_kw."""
    if plausible(t0, e0, t1, e1, rules.max_power_kw):
        return None
    rise, hours = e1 - e0, (t1 - t0) / US_PER_HOUR
    other = _fmt(t0 if relation == "since" else t1)
    return Flag(IMPLAUSIBLE_JUMP.code,
                f"+{rise:.3f} kWh in {hours * 60:.1f} min {relation} {other}")


def plausible(t0, e0, t1, e1, max_power_kw: float):
    """Whether the rise from (t0, e0) to (t1, e1) stays within max_power_kw. One
    expression for single readings (ints, floats) and numpy arrays (silver.runs), so
    that both paths round alike and judge alike."""
    return e1 - e0 <= max_power_kw * ((t1 - t0) / US_PER_HOUR)


def trim(window: Window, lateness_us: int) -> None:
    """Forget the readings more than lateness_us behind the latest, but for the newest
    of them (the baseline a reading still allowed may need). The threshold only rises
    as readings are appended, so trimming after each or once after many of them
    leaves the same window."""
    latest = window.latest_us
    if latest is None:
        return
    keep_from = max(bisect_left(window.ts_us, latest - lateness_us) - 1, 0)
    if keep_from:
        del window.ts_us[:keep_from]
        del window.energy[:keep_from]
