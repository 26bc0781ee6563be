"""The month ahead: each meter's kWh and energy cost projected to the end of the month.

Method (docs/semantics.md, "The month ahead"): the meter's half hours of the month so
far give a profile, the mean kWh of each (local weekday, half hour of the day) over the
complete half hours since its first one this month (a half hour without a piece counts
0); each half hour left in the month gets the profile's value for its weekday and half
hour (the mean of that half hour over all days when its weekday has not come yet), priced
under the meter's contracted plan; the half hour holding "now" gets the share of it left.
"""

from __future__ import annotations

from contextlib import closing
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.core.tariff import HALF_HOUR_US, Tariff, load_tariff
from meterlake.read.connection import connect
from meterlake.read.result import Result

COLUMNS = ["sensor_id", "kwh_so_far", "kwh_projected", "cost_so_far_eur", "cost_projected_eur"]


def _month_periods(now: pd.Timestamp, zone: ZoneInfo) -> pd.DatetimeIndex:
    local = now.tz_convert(zone)
    start = pd.Timestamp(local.year, local.month, 1).tz_localize(zone)
    end = (start + pd.offsets.MonthBegin(1)).tz_localize(None).tz_localize(zone)
    return pd.date_range(start.tz_convert("UTC"), end.tz_convert("UTC"), freq="30min",
                         inclusive="left")  # fmt: skip


def _cost(periods: pd.DatetimeIndex | pd.Series, kwh: np.ndarray, plan: int,
          tariff: Tariff) -> float:  # fmt: skip
    us = pd.DatetimeIndex(pd.to_datetime(periods, utc=True)).as_unit("us").asi8
    _, price = tariff.prices(us, np.full(len(us), plan, dtype=np.int64))
    return float(np.sum(kwh * price))


def project(halfhours: pd.DataFrame, now: datetime, tariff: Tariff) -> pd.DataFrame:
    """halfhours: sensor_id, period_start (UTC), energy_kwh of the month of `now` up to
    now -> one row per sensor (COLUMNS), by sensor id."""
    zone = tariff.zone
    stamp = pd.Timestamp(now).tz_convert("UTC")
    periods = _month_periods(stamp, zone)
    current = stamp.floor("30min")
    ahead = periods[periods >= current]
    # the half hour holding now: only what is left of it
    left = np.where(ahead == current, (current + pd.Timedelta(minutes=30) - stamp)
                    / pd.Timedelta(minutes=30), 1.0)  # fmt: skip
    local = ahead.tz_convert(zone)
    ahead_key = pd.DataFrame({"weekday": local.weekday,
                              "slot": local.hour * 2 + local.minute // 30})  # fmt: skip
    rows = []
    for sensor, mine in halfhours.groupby("sensor_id", sort=True):
        starts = pd.to_datetime(mine["period_start"], utc=True)
        plan = tariff.plan_of(str(sensor))
        kwh_so_far = float(mine["energy_kwh"].sum())
        cost_so_far = _cost(starts, mine["energy_kwh"].to_numpy(), plan, tariff)
        seen = periods[(periods >= starts.min()) & (periods < current)]
        observed = mine.groupby(starts.values)["energy_kwh"].sum()
        kwh = pd.Series(observed.reindex(seen.values, fill_value=0.0).to_numpy(), index=seen)
        seen_local = seen.tz_convert(zone)
        frame = pd.DataFrame({"weekday": seen_local.weekday,
                              "slot": seen_local.hour * 2 + seen_local.minute // 30,
                              "kwh": kwh.to_numpy()})  # fmt: skip
        by_day = frame.groupby(["weekday", "slot"])["kwh"].mean()
        by_slot = frame.groupby("slot")["kwh"].mean()
        expected = ahead_key.join(by_day.rename("day_mean"), on=["weekday", "slot"])
        expected = expected.join(by_slot.rename("slot_mean"), on="slot")
        future = expected["day_mean"].fillna(expected["slot_mean"]).fillna(0.0).to_numpy() * left
        rows.append((sensor, kwh_so_far, kwh_so_far + float(future.sum()), cost_so_far,
                     cost_so_far + _cost(ahead, future, plan, tariff)))  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def query_projection(config: Config) -> Result:
    """`meterlake query projection`: the current month of gold's halfhour_energy."""
    tariff = load_tariff(config.semantics.tariff, config.semantics.zone)
    with closing(connect(config, tables=("halfhour_energy",))) as con:
        now = con.execute("SELECT max(as_of) FROM halfhour_energy").fetchone()[0]
        if now is None:
            raise MeterlakeError("halfhour_energy is empty: run `meterlake run --once` first")
        month = _month_periods(pd.Timestamp(now).tz_convert("UTC"), tariff.zone)
        halfhours = con.execute(
            "SELECT sensor_id, period_start, energy_kwh FROM halfhour_energy "
            "WHERE period_start >= $start AND period_start < $end",
            {"start": month[0].to_pydatetime(),
             "end": (month[-1] + pd.Timedelta(HALF_HOUR_US, "us")).to_pydatetime()},
        ).df()  # fmt: skip
    table = project(halfhours, now, tariff)
    return Result(
        columns=COLUMNS, rows=[tuple(r) for r in table.itertuples(index=False)], decimals=4,
        notes=("to the end of the month by each meter's weekday and half-hour profile so far "
               "(docs/semantics.md); energy term only, contracted plan",),
    )  # fmt: skip
