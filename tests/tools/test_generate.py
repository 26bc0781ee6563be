"""The synthetic month: format, order, determinism, and homes that look like homes."""
from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterlake.core.errors import MeterlakeError
from meterlake.tools import generate
from meterlake.tools.generate import (
    MonthSpec,
    Readings,
    format_lines,
    month_readings,
    sensor_ids,
    write_readings,
)

LINE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2};S\d{2};\d+\.\d{3}")
SMALL = MonthSpec(meters=3, days=2, seed=7)


@pytest.fixture(scope="module")
def month() -> Readings:
    """The default month (11 meters, February 2024, seed 42)."""
    return month_readings(MonthSpec())


def per_meter(readings: Readings) -> list[tuple[np.ndarray, np.ndarray]]:
    """(seconds, kWh) of each meter, in time order."""
    return [
        (readings.second[readings.meter == m], readings.energy_wh[readings.meter == m] / 1000)
        for m in range(len(readings.sensor_ids))
    ]


def interval_power_kw(second: np.ndarray, kwh: np.ndarray) -> np.ndarray:
    return np.diff(kwh) / (np.diff(second) / 3600)


def parse(path: Path) -> list[tuple[str, str, str]]:
    return [tuple(line.split(";")) for line in path.read_text().splitlines()]


def test_lines_are_in_the_publisher_format(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "month.csv"
    count = write_readings(SMALL, out)
    text = out.read_text()
    lines = text.splitlines()
    assert count == len(lines) > 2 * 24 * 60 * 3 * 0.9
    assert text.endswith("\n") and "\r" not in text
    assert [line for line in lines if not LINE.fullmatch(line)] == []
    assert {line.split(";")[1] for line in lines} == {"S01", "S02", "S03"}


def test_lines_are_sorted_by_timestamp_then_sensor(tmp_path: Path) -> None:
    out = tmp_path / "month.csv"
    write_readings(MonthSpec(meters=12, days=1, cadence_s=30.0, seed=3), out)
    rows = [(ts, sensor) for ts, sensor, _ in parse(out)]
    assert rows == sorted(rows)
    assert len(set(rows)) == len(rows)  # one reading per meter per second at most


def test_the_month_covers_the_requested_days(tmp_path: Path) -> None:
    out = tmp_path / "month.csv"
    write_readings(MonthSpec(meters=2, days=3, start="2024-02-27", seed=1), out)
    days = sorted({ts[:10] for ts, _, _ in parse(out)})
    assert days == ["2024-02-27", "2024-02-28", "2024-02-29"]


def test_registers_have_three_decimals_and_never_decrease(tmp_path: Path) -> None:
    out = tmp_path / "month.csv"
    write_readings(SMALL, out)
    last: dict[str, float] = {}
    for _, sensor, energy in parse(out):
        assert re.fullmatch(r"\d+\.\d{3}", energy)
        assert float(energy) >= last.get(sensor, 0.0), sensor
        last[sensor] = float(energy)


def test_implied_power_stays_below_the_implausible_jump_limit(month: Readings) -> None:
    for second, kwh in per_meter(month):
        power = interval_power_kw(second, kwh)
        assert power.min() >= 0
        assert power.max() <= 10.0  # homes contract 3.45 to 6.9 kVA; the pipeline allows 50


def test_meters_start_at_distinct_registers_of_hundreds_to_tens_of_thousands(
    month: Readings,
) -> None:
    first = [kwh[0] for _, kwh in per_meter(month)]
    assert len(set(first)) == len(first) == 11
    assert all(100 <= value < 100_000 for value in first)
    assert max(first) / min(first) > 10  # not all alike


def test_readings_come_every_cadence_with_a_few_seconds_of_jitter(month: Readings) -> None:
    for second, _ in per_meter(month):
        gaps = np.diff(second)
        assert gaps.min() >= 1
        regular = gaps[gaps < 90]
        assert abs(np.median(regular) - 60) <= 1
        assert regular.min() >= 60 - 2 * 5 - 1 and regular.max() <= 60 + 2 * 5 + 1
        assert regular.std() > 1  # jittered, not a clock tick
        assert len(second) > 0.95 * 29 * 24 * 60  # about one reading a minute


def test_some_readings_are_missed_and_some_outages_last_minutes_to_hours(
    month: Readings,
) -> None:
    gaps = np.concatenate([np.diff(second) for second, _ in per_meter(month)])
    missed = gaps[(gaps >= 90) & (gaps < 300)]  # one or a few readings lost
    outages = gaps[gaps >= 300]
    assert 0.0005 < (gaps >= 90).mean() < 0.03
    assert len(missed) >= 11
    assert len(outages) >= 11
    assert outages.max() <= 2 * 3600 + 2 * 65
    assert (outages >= 30 * 60).sum() >= 3  # some last over half an hour


def test_every_home_uses_more_in_the_evening_than_at_night(month: Readings) -> None:
    for sensor, (second, kwh) in zip(month.sensor_ids, per_meter(month), strict=True):
        power = interval_power_kw(second, kwh)
        hour = (second[:-1] % 86_400) // 3600
        night = power[(hour >= 2) & (hour < 5)].mean()
        evening = power[(hour >= 19) & (hour < 22)].mean()
        assert night < evening, sensor
        assert 0.03 < night < 1.0, sensor  # a base load, not nothing


def test_monthly_totals_are_plausible_for_portuguese_homes(month: Readings) -> None:
    totals = [kwh[-1] - kwh[0] for _, kwh in per_meter(month)]
    assert all(100 <= total <= 600 for total in totals), totals
    assert max(totals) - min(totals) > 100  # homes differ


# sha256 of `meterlake generate` with the defaults (11 meters, February 2024, seed 42),
# as the per-meter generator wrote it before the generator worked in blocks of meters.
DEFAULT_MONTH_SHA256 = "df10be005c3c764cac370b74574fecc22b3ac99567c39297d874d00d5f3c4410"


def test_the_default_month_is_the_same_file_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "month.csv"
    assert write_readings(MonthSpec(), out) == 456_762
    assert hashlib.sha256(out.read_bytes()).hexdigest() == DEFAULT_MONTH_SHA256


def test_blocks_of_meters_do_not_change_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = MonthSpec(meters=7, days=2, cadence_s=300.0, start="2024-10-26", seed=11)
    whole, blocks = tmp_path / "whole.csv", tmp_path / "blocks.csv"
    write_readings(spec, whole)
    monkeypatch.setattr(generate, "BLOCK_CELLS", 2 * 24 * 60 * 3)  # blocks of 3, 3 and 1
    assert generate.block_size(spec) == 3
    write_readings(spec, blocks)
    assert blocks.read_bytes() == whole.read_bytes()


def test_a_fleet_at_fifteen_minutes_reads_about_every_quarter_hour() -> None:
    fleet = month_readings(MonthSpec(meters=3000, days=1, cadence_s=900.0, seed=5))
    per_meter_count = np.bincount(fleet.meter, minlength=3000)
    assert 85 <= np.median(per_meter_count) <= 96  # 96 slots a day, a few lost
    assert per_meter_count.max() <= 97
    lines = format_lines(Readings(fleet.sensor_ids, fleet.start, fleet.second[:3],
                                  fleet.meter[:3], fleet.energy_wh[:3]))
    assert all(re.fullmatch(r"2024-02-01 00:\d\d:\d\d;S\d{4};\d+\.\d{3}", x) for x in lines)


def test_same_seed_same_file_other_seed_other_file(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    write_readings(SMALL, a)
    write_readings(SMALL, b)
    write_readings(replace(SMALL, seed=SMALL.seed + 1), c)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_a_meter_is_the_same_home_whatever_the_number_of_meters() -> None:
    three = format_lines(month_readings(MonthSpec(meters=3, days=1)))
    five = format_lines(month_readings(MonthSpec(meters=5, days=1)))
    assert [x for x in three if ";S02;" in x] == [x for x in five if ";S02;" in x]
    assert len(five) > len(three)


def test_sensor_ids_are_zero_padded_so_they_sort() -> None:
    assert sensor_ids(11) == tuple(f"S{i:02d}" for i in range(1, 12))
    ids = sensor_ids(120)
    assert ids[0] == "S001" and ids[-1] == "S120"
    assert list(ids) == sorted(ids)


def test_the_march_switch_skips_the_missing_hour(tmp_path: Path) -> None:
    out = tmp_path / "march.csv"
    write_readings(MonthSpec(meters=1, days=2, start="2024-03-30", seed=5), out)
    stamps = [ts for ts, _, _ in parse(out)]
    assert not any(ts.startswith("2024-03-31 01:") for ts in stamps)  # 01:00-01:59 never was
    assert any(ts.startswith("2024-03-31 02:0") for ts in stamps)
    assert stamps[-1].startswith("2024-04-01 00:5")  # 48 real hours from the first midnight


def test_the_october_switch_writes_the_repeated_hour_twice_the_second_with_offset(
    tmp_path: Path,
) -> None:
    out = tmp_path / "october.csv"
    write_readings(MonthSpec(meters=1, days=2, start="2024-10-26", seed=5), out)
    stamps = [ts for ts, _, _ in parse(out)]
    first = [ts for ts in stamps if ts.startswith("2024-10-27 01:")]
    second = [ts for ts in stamps if ts.startswith("2024-10-27T01:")]
    assert first and second and all(ts.endswith("+00:00") for ts in second)
    assert stamps.index(second[0]) > stamps.index(first[-1])


@pytest.mark.parametrize(
    "field, value",
    [("meters", 0), ("days", 0), ("cadence_s", 0.0), ("start", "February"), ("jitter_s", -1.0)],
)
def test_an_impossible_spec_is_a_clear_error(field: str, value: object) -> None:
    with pytest.raises(MeterlakeError):
        MonthSpec(**{field: value})


def test_an_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(MeterlakeError, match="cannot write"):
        write_readings(SMALL, tmp_path / "file" / "month.csv")


@settings(max_examples=25, deadline=None)
@given(
    meters=st.integers(1, 3),
    cadence_s=st.floats(1.0, 900.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_small_spec_gives_sorted_rising_plausible_registers(
    meters: int, cadence_s: float, seed: int
) -> None:
    readings = month_readings(MonthSpec(meters=meters, days=1, cadence_s=cadence_s, seed=seed))
    keys = readings.second * meters + readings.meter
    assert (np.diff(keys) > 0).all()  # sorted by (second, meter), no duplicates
    assert readings.second.min() >= 0 and readings.second.max() < 86_400
    for second, kwh in per_meter(readings):
        if second.size > 1:
            power = interval_power_kw(second, kwh)
            # registers are whole Wh: rounding adds at most 3.6 kW over a 1 s interval
            assert power.min() >= 0 and power.max() < 50
