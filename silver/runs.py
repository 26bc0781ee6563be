"""Runs of in-order readings, judged column-wise with numpy.

Most readings of a batch come after the sensor's latest accepted one, rise
plausibly and do not fall: `silver.meter.judge` accepts each of them with no flag
and one interval from its predecessor, so the verdicts of such a run are known
before judging it. Its pieces are then computed for the whole run at once, with
the operations of the scalar path in the same order (`silver.meter.plausible`,
`silver.split.spread`), so that the two paths give the same floats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meterlake.core.tariff import HALF_HOUR_US, Tariff
from silver.meter import MeterRules, Window, plausible, trim
from silver.split import spread


def follows(t0, e0, t1, e1, max_power_kw: float):
    """Whether judge accepts (t1, e1) right after the latest reading (t0, e0) with no
    flag: later, no implausible jump, no counter decrease. Scalars or arrays."""
    return (t1 > t0) & (e1 >= e0) & plausible(t0, e0, t1, e1, max_power_kw)


def run_breaks(ts_us: np.ndarray, energy: np.ndarray, max_power_kw: float) -> np.ndarray:
    """The positions k of sorted readings where reading k cannot follow reading k - 1
    in a run, then len(ts_us): where runs end."""
    fits = follows(ts_us[:-1], energy[:-1], ts_us[1:], energy[1:], max_power_kw)
    return np.append(np.flatnonzero(~fits) + 1, len(ts_us))


def run_end(
    window: Window, ts_us: np.ndarray, energy: np.ndarray, start: int, breaks: np.ndarray,
    max_power_kw: float,
) -> int:  # fmt: skip
    """The end of the run of readings from `start`: start itself when that reading
    does not follow the window's latest one. Within a run each reading follows the one
    before (breaks); the first one is checked against the window, since readings
    judged one at a time before it may have been rejected."""
    if window.ts_us and not follows(
        window.ts_us[-1], window.energy[-1], int(ts_us[start]), float(energy[start]), max_power_kw
    ):
        return start
    return int(breaks[np.searchsorted(breaks, start, side="right")])


def judge_run(
    window: Window, sensor_id: str, ts_us: np.ndarray, energy: np.ndarray, rules: MeterRules
) -> tuple[np.ndarray, dict[str, Any]]:
    """Accept a run (see run_end) into the window, as judge would one reading after
    another. Returns the pieces as columns (Piece's fields) and, for each piece, the
    run's reading whose interval it is part of (non-decreasing)."""
    if window.ts_us:
        t0 = np.append(window.ts_us[-1], ts_us[:-1])
        e0 = np.append(window.energy[-1], energy[:-1])
        closing = np.arange(len(ts_us))
    else:  # the sensor's first reading: only a baseline
        t0, e0, closing = ts_us[:-1], energy[:-1], np.arange(1, len(ts_us))
    t1, e1 = ts_us[closing], energy[closing]
    window.ts_us.extend(ts_us.tolist())
    window.energy.extend(energy.tolist())
    trim(window, rules.allowed_lateness_us)
    interval, pieces = split_intervals(sensor_id, t0, e0, t1, e1, rules.tariff)
    return closing[interval], pieces


def split_intervals(
    sensor_id: str | np.ndarray, t0: np.ndarray, e0: np.ndarray, t1: np.ndarray, e1: np.ndarray,
    tariff: Tariff,
) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """split_at_half_hours (sign +1) of many intervals: the pieces in the same order,
    as columns, and the interval of each piece. sensor_id: one for all intervals, or
    one per interval (many meters at once, silver.bucket). Interval j touches the periods from
    the one holding t0[j] to the one holding t1[j] - 1 (half_hour_spans). Band and price:
    the meter's contracted plan, looked up once per distinct (plan, period)."""
    first = t0 - t0 % HALF_HOUR_US
    last = (t1 - 1) - (t1 - 1) % HALF_HOUR_US
    count = (last - first) // HALF_HOUR_US + 1
    interval = np.repeat(np.arange(len(t0)), count)
    nth = np.arange(len(interval)) - np.repeat(np.cumsum(count) - count, count)
    period = first[interval] + nth * HALF_HOUR_US
    start = np.maximum(period, t0[interval])
    end = np.minimum(period + HALF_HOUR_US, t1[interval])
    delta = np.maximum(e1 - e0, 0.0)[interval]
    kwh = spread(delta, start, end, (t1 - t0)[interval])
    if isinstance(sensor_id, np.ndarray):  # each meter priced by its own contract
        plan = tariff.plans_of(sensor_id)[interval]
    else:
        plan = np.full(len(period), tariff.plan_of(sensor_id), dtype=np.int64)
    band, price = tariff.prices(period, plan)
    return interval, {
        "sensor_id": sensor_id[interval] if isinstance(sensor_id, np.ndarray) else sensor_id,
        "period_start_us": period,
        "band": band,
        "price": price,
        "kwh": kwh,
        "cost_eur": kwh * price,
        "interval_start_us": t0[interval],
        "interval_end_us": t1[interval],
        "sign": 1,
    }
