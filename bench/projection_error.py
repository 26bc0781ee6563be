"""The projection's error on the generated month (issue 28): project each meter's
February from its half hours up to day 10 and day 20 (midnight) and compare with the
month's real end. The half hours come from the oracle over `meterlake generate`'s
default month (11 meters, a reading a minute).

    .venv/bin/python -m bench.projection_error [--meters 11] [--seed 42]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from meterlake.core.config import load_config
from meterlake.core.tariff import load_tariff
from meterlake.read.projection import project
from meterlake.tools.generate import MonthSpec, write_readings
from oracle import compute_answers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=11)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    config = load_config()
    tariff = load_tariff(config.semantics.tariff, config.semantics.zone)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "month.csv"
        write_readings(MonthSpec(meters=args.meters, seed=args.seed), path)
        oracle = compute_answers(path, config.semantics)
    halfhours = oracle.halfhour_energy.copy()
    halfhours["period_start"] = pd.to_datetime(halfhours["period_start"], utc=True)
    real = project(halfhours, datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC), tariff)
    real = real.set_index("sensor_id")[["kwh_so_far", "cost_so_far_eur"]]
    print(f"{len(real)} meters, February 2024: {real['kwh_so_far'].sum():.1f} kWh")
    for day in (10, 20):
        now = datetime(2024, 2, day, tzinfo=UTC)  # February: Lisbon time is UTC
        got = project(halfhours[halfhours["period_start"] < now], now, tariff)
        got = got.set_index("sensor_id")
        kwh = (got["kwh_projected"] / real["kwh_so_far"] - 1) * 100
        cost = (got["cost_projected_eur"] / real["cost_so_far_eur"] - 1) * 100
        fleet = (got["kwh_projected"].sum() / real["kwh_so_far"].sum() - 1) * 100
        print(f"projected at day {day}: kWh error per meter {kwh.min():+.1f}% .. "
              f"{kwh.max():+.1f}% (mean |error| {kwh.abs().mean():.1f}%, fleet {fleet:+.1f}%); "
              f"cost {cost.min():+.1f}% .. {cost.max():+.1f}% "
              f"(mean |error| {cost.abs().mean():.1f}%)")


if __name__ == "__main__":
    main()
