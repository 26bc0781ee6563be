"""Tests of the oracle itself (`oracle/`): hand-computed cases and properties.

Every expected number here is worked out by hand from the spec and
docs/semantics.md; none comes from the pipeline. Readings are written to
temporary files in the publisher's format (`timestamp;sensor_id;energy`).
"""
from __future__ import annotations

import bisect
import itertools
import tempfile
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterlake.core.config import load_config
from oracle import OracleResult, compute_answers, reference

SEMANTICS = load_config().semantics
PRICE = {"ponta": 0.2400, "cheias": 0.1741, "vazio": 0.1072, "super_vazio": 0.1072}
HALF_HOUR = pd.Timedelta(minutes=30)


def run(path: Path, lines: list[str], **kwargs) -> OracleResult:
    path.write_text("".join(f"{line}\n" for line in lines))
    return compute_answers(path, SEMANTICS, **kwargs)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def day(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def rows(frame: pd.DataFrame, *columns: str) -> list[tuple]:
    return list(frame[list(columns)].itertuples(index=False, name=None))


def approx_rows(expected: list[tuple]) -> list[tuple]:
    return [tuple(pytest.approx(v) if isinstance(v, float) else v for v in r) for r in expected]


# --------------------------------------------------------------------------- the spec's examples


def test_worked_example_x_interval_over_midnight_is_split_between_days(tmp_path):
    result = run(tmp_path / "x.txt", ["2024-02-03 23:40:00;X;100.0", "2024-02-04 00:20:00;X;100.8"])

    assert rows(result.pieces, "period_start", "day", "kwh", "band", "price", "cost_eur") == (
        approx_rows(
            [
                (utc("2024-02-03 23:30"), day("2024-02-03"), 0.4, "vazio", 0.1072, 0.4 * 0.1072),
                (utc("2024-02-04 00:00"), day("2024-02-04"), 0.4, "vazio", 0.1072, 0.4 * 0.1072),
            ]
        )
    )
    assert rows(result.day_cost, "day", "cost_eur") == approx_rows(
        [(day("2024-02-03"), 0.04288), (day("2024-02-04"), 0.04288)]
    )
    assert set(result.day_energy["as_of"]) == {utc("2024-02-04 00:20")}


def test_worked_example_y_interval_across_cheias_and_ponta(tmp_path):
    result = run(tmp_path / "y.txt", ["2024-02-05 08:50:00;Y;200.0", "2024-02-05 09:10:00;Y;200.6"])

    assert rows(result.pieces, "period_start", "kwh", "band", "cost_eur") == approx_rows(
        [
            (utc("2024-02-05 08:30"), 0.3, "cheias", 0.05223),
            (utc("2024-02-05 09:00"), 0.3, "ponta", 0.0720),
        ]
    )
    assert rows(result.day_cost, "sensor_id", "cost_eur") == approx_rows([("Y", 0.12423)])
    assert rows(result.q4, "sensor_id", "cost_eur") == approx_rows([("Y", 0.12423)])


# --------------------------------------------------------------------------- tariff


@pytest.mark.parametrize(
    ("date", "boundary", "before", "after"),
    [
        ("2024-02-07", "02:00", "vazio", "super_vazio"),
        ("2024-02-07", "06:00", "super_vazio", "vazio"),
        ("2024-02-07", "08:00", "vazio", "cheias"),
        ("2024-02-07", "09:00", "cheias", "ponta"),
        ("2024-02-07", "10:30", "ponta", "cheias"),
        ("2024-02-07", "18:00", "cheias", "ponta"),
        ("2024-02-07", "20:30", "ponta", "cheias"),
        ("2024-02-07", "22:00", "cheias", "vazio"),
        ("2024-07-10", "09:00", "cheias", "cheias"),  # ponta in winter
        ("2024-07-10", "10:30", "cheias", "ponta"),
        ("2024-07-10", "19:30", "cheias", "ponta"),
    ],
)
def test_each_tariff_boundary_splits_the_interval_into_its_two_bands(
    tmp_path, date, boundary, before, after
):
    at = pd.Timestamp(f"{date} {boundary}")
    lines = [
        f"{at - pd.Timedelta(minutes=10)};T;10.0",
        f"{at + pd.Timedelta(minutes=10)};T;10.2",
    ]
    result = run(tmp_path / "t.txt", lines)

    offset = pd.Timedelta(hours=1 if date.startswith("2024-07") else 0)  # Lisbon summer time
    start = (at - offset).tz_localize("UTC")
    assert rows(result.pieces, "period_start", "kwh", "band", "price") == approx_rows(
        [
            (start - HALF_HOUR, 0.1, before, PRICE[before]),
            (start, 0.1, after, PRICE[after]),
        ]
    )


def test_a_reading_exactly_on_a_boundary_leaves_no_empty_piece(tmp_path):
    lines = [
        "2024-02-05 08:30:00;B;10.0",
        "2024-02-05 09:00:00;B;10.5",
        "2024-02-05 09:30:00;B;11.5",
    ]
    result = run(tmp_path / "b.txt", lines)

    assert rows(result.pieces, "period_start", "kwh", "band", "as_of") == approx_rows(
        [
            (utc("2024-02-05 08:30"), 0.5, "cheias", utc("2024-02-05 09:00")),
            (utc("2024-02-05 09:00"), 1.0, "ponta", utc("2024-02-05 09:30")),
        ]
    )


def test_interval_over_month_end_counts_in_both_months(tmp_path):
    result = run(tmp_path / "m.txt", ["2024-02-29 23:50:00;M;5.0", "2024-03-01 00:10:00;M;5.2"])

    assert rows(result.month_energy, "month", "energy_kwh", "as_of") == approx_rows(
        [
            (day("2024-02-01"), 0.1, utc("2024-03-01 00:10")),
            (day("2024-03-01"), 0.1, utc("2024-03-01 00:10")),
        ]
    )
    assert rows(result.day_energy, "day", "energy_kwh") == approx_rows(
        [(day("2024-02-29"), 0.1), (day("2024-03-01"), 0.1)]
    )
    assert result.now == utc("2024-03-01 00:10")
    assert rows(result.q1, "sensor_id", "energy_kwh") == approx_rows([("M", 0.1)])


# --------------------------------------------------------------------------- validity


def test_counter_decrease_is_accepted_and_its_interval_counts_zero(tmp_path):
    lines = [
        "2024-02-05 00:00:00;C;100",
        "2024-02-05 00:10:00;C;101",
        "2024-02-05 00:20:00;C;50",
        "2024-02-05 00:30:00;C;51",
    ]
    result = run(tmp_path / "c.txt", lines)

    assert result.quarantine_counts == {"counter_decrease": 1}
    assert rows(result.quarantine, "line_no", "reason") == [(3, "counter_decrease")]
    assert list(result.readings["energy"]) == [100, 101, 50, 51]
    assert rows(result.pieces, "kwh", "as_of") == approx_rows(
        [
            (1.0, utc("2024-02-05 00:10")),
            (0.0, utc("2024-02-05 00:20")),
            (1.0, utc("2024-02-05 00:30")),
        ]
    )
    assert rows(result.halfhour_energy, "period_start", "energy_kwh") == approx_rows(
        [(utc("2024-02-05 00:00"), 2.0)]
    )


def test_implausible_jump_is_rejected_and_the_next_reading_uses_the_old_baseline(tmp_path):
    lines = [
        "2024-02-05 00:00:00;J;100",
        "2024-02-05 00:10:00;J;200",  # 100 kWh in 10 minutes: 600 kW
        "2024-02-05 00:20:00;J;100.5",  # against 100 (not 200): no decrease
    ]
    result = run(tmp_path / "j.txt", lines)

    assert result.quarantine_counts == {"implausible_jump": 1}
    assert list(result.readings["energy"]) == [100, 100.5]
    assert rows(result.pieces, "kwh", "as_of") == approx_rows([(0.5, utc("2024-02-05 00:20"))])


def test_a_rise_at_exactly_max_power_is_plausible(tmp_path):
    lines = [
        "2024-02-05 00:00:00;J;100",
        "2024-02-05 01:00:00;J;150",  # 50 kWh in one hour: exactly 50 kW
        "2024-02-05 02:00:00;J;200.001",
    ]
    result = run(tmp_path / "j.txt", lines)

    assert result.quarantine_counts == {"implausible_jump": 1}
    assert list(result.readings["energy"]) == [100, 150]


def test_duplicates_are_counted_and_conflicting_ones_lose_to_the_first(tmp_path):
    lines = [
        "2024-02-05 00:00:00;D;100",
        "2024-02-05 00:10:00;D;101",
        "2024-02-05 00:10:00;D;101",
        "2024-02-05 00:10:00;D;101.000",
        "2024-02-05T00:10:00Z;D;101",  # the same instant, written otherwise
        "2024-02-05 00:10:00;D;102",
        "2024-02-05 00:20:00;D;101.5",  # against 101, not 102
    ]
    result = run(tmp_path / "d.txt", lines)

    assert result.quarantine_counts == {"duplicate": 3, "conflicting_duplicate": 1}
    assert rows(result.quarantine, "line_no", "reason") == [
        (3, "duplicate"),
        (4, "duplicate"),
        (5, "duplicate"),
        (6, "conflicting_duplicate"),
    ]
    assert list(result.readings["energy"]) == [100, 101, 101.5]
    assert rows(result.pieces, "kwh") == approx_rows([(1.0,), (0.5,)])


def _every_ten_minutes(sensor: str, first: str, count: int) -> list[str]:
    start = pd.Timestamp(first)
    return [
        f"{start + pd.Timedelta(minutes=10 * i)};{sensor};{100 + 0.3 * i + 0.01 * (i % 3):.2f}"
        for i in range(count)
    ]


def _gold(result: OracleResult) -> dict[str, pd.DataFrame]:
    return {
        "pieces": result.pieces,
        "month_energy": result.month_energy,
        "day_energy": result.day_energy,
        "halfhour_energy": result.halfhour_energy,
        "day_cost": result.day_cost,
        "q1": result.q1,
        "q2": result.q2,
        "q3": result.q3,
        "q4": result.q4,
    }


def assert_same_answers(got: OracleResult, expected: OracleResult) -> None:
    for name, frame in _gold(expected).items():
        pd.testing.assert_frame_equal(_gold(got)[name], frame, check_exact=False, rtol=1e-12)
    assert got.now == expected.now


def test_out_of_order_within_lateness_gives_the_sorted_answers(tmp_path):
    ordered = _every_ten_minutes("O", "2024-02-05 07:05", 13)  # 07:05 .. 09:05
    shuffled = ordered.copy()
    shuffled[3], shuffled[4] = shuffled[4], shuffled[3]
    shuffled.insert(10, shuffled.pop(5))  # 50 minutes late
    shuffled.append(shuffled.pop(6))  # 60 minutes late: exactly the limit

    got = run(tmp_path / "shuffled.txt", shuffled)
    expected = run(tmp_path / "ordered.txt", ordered)

    assert got.quarantine_counts == {}
    assert_same_answers(got, expected)


def test_beyond_lateness_is_too_late_and_excluded(tmp_path):
    ordered = _every_ten_minutes("L", "2024-02-05 00:05", 19)  # 00:05 .. 03:05
    late = ["2024-02-05 02:04:59;L;105.0"]  # 60 min 1 s behind 03:05

    got = run(tmp_path / "late.txt", ordered + late)
    expected = run(tmp_path / "ordered.txt", ordered)

    assert got.quarantine_counts == {"too_late": 1}
    assert rows(got.quarantine, "line_no", "reason") == [(20, "too_late")]
    assert_same_answers(got, expected)


def test_late_reading_above_its_successor_records_a_decrease_for_the_successor(tmp_path):
    lines = [
        "2024-02-05 00:00:00;S;100",
        "2024-02-05 00:20:00;S;101",
        "2024-02-05 00:10:00;S;101.5",  # late; its successor (101) is lower
    ]
    result = run(tmp_path / "s.txt", lines)

    assert rows(result.quarantine, "line_no", "reason") == [(2, "counter_decrease")]
    assert rows(result.pieces, "kwh", "as_of") == approx_rows(
        [(1.5, utc("2024-02-05 00:10")), (0.0, utc("2024-02-05 00:20"))]
    )


def test_a_sensor_with_one_reading_has_no_rows(tmp_path):
    lines = [
        "2024-02-05 00:00:00;A;1",
        "2024-02-05 00:05:00;solo;7",
        "2024-02-05 00:10:00;A;2",
    ]
    result = run(tmp_path / "one.txt", lines)

    for frame in (result.pieces, result.month_energy, result.day_energy, result.day_cost):
        assert list(frame["sensor_id"].unique()) == ["A"]
    assert list(result.q1["sensor_id"]) == ["A"]
    assert list(result.q3.columns) == ["period_start", "A"]
    assert result.quarantine_counts == {}


def test_per_line_rules_name_the_first_failing_reason(tmp_path):
    lines = {
        ";S;1": "missing_field",
        "2024-02-05 00:00:00;;1": "missing_field",
        "2024-02-05 00:00:00;S;": "missing_field",
        "2024-02-05 00:00:00;S": "missing_field",
        ";;abc": "missing_field",
        "2024-02-05 00:00:00; ;1": "bad_sensor_id",
        f"2024-02-05 00:00:00;{'s' * 65};1": "bad_sensor_id",
        "2024-02-05 00:00:00;A\tB;1": "bad_sensor_id",
        "yesterday; ;1": "bad_sensor_id",  # the sensor rule comes first
        "2024-02-30 00:00:00;S;1": "bad_timestamp",
        "2024-02-05 24:00:00;S;1": "bad_timestamp",
        "05/02/2024 00:00:00;S;1": "bad_timestamp",
        "1999-12-31 23:59:59;S;1": "bad_timestamp",  # before min_timestamp
        "yesterday;S;abc": "bad_timestamp",  # before bad_energy
        "2024-02-05 00:00:00;S;abc": "bad_energy",
        "2024-02-05 00:00:00;S;nan": "bad_energy",
        "2024-02-05 00:00:00;S;inf": "bad_energy",
        "2024-02-05 00:00:00;S;-1": "bad_energy",
        "2024-02-05 00:00:00;S;1;2": "bad_energy",
    }
    result = run(tmp_path / "bad.txt", list(lines))

    assert rows(result.quarantine, "reason") == [(reason,) for reason in lines.values()]
    assert result.quarantine_counts == dict(Counter(lines.values()))
    assert result.readings.empty and result.pieces.empty and result.now is None
    assert result.q1.empty and result.q3.empty


def test_clock_skew_applies_only_when_now_is_given(tmp_path):
    lines = ["2024-02-07 00:00:00;K;1", "2024-02-07 00:00:01;K;1.001"]
    now = datetime(2024, 2, 6, tzinfo=UTC)  # the second is 1 day and 1 second ahead

    assert run(tmp_path / "k.txt", lines).quarantine_counts == {}
    assert run(tmp_path / "k.txt", lines, now=now).quarantine_counts == {"bad_timestamp": 1}


def test_iso_timestamps_with_fractions_and_offsets(tmp_path):
    lines = [
        "2024-02-05T00:10:00.5+01:00;I;1",
        "2024-02-05T00:20:00Z;I;2",
        "2024-02-05 00:30:00+0100;I;3",
        "2024-02-05T00:40:00.1234567;I;4",  # naive; beyond microseconds: truncated
        "2024-02-05T00:50:00-01;I;5",
    ]
    result = run(tmp_path / "iso.txt", lines)

    assert sorted(result.readings["timestamp"]) == [
        utc("2024-02-04 23:10:00.5"),
        utc("2024-02-04 23:30"),
        utc("2024-02-05 00:20"),
        utc("2024-02-05 00:40:00.123456"),
        utc("2024-02-05 01:50"),
    ]


def test_empty_file_gives_empty_answers(tmp_path):
    result = run(tmp_path / "empty.txt", [])

    assert result.now is None and result.quarantine_counts == {}
    assert all(frame.empty for frame in _gold(result).values())


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("2024-02-05 00:00:00;caf\xe9;1\n".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        compute_answers(path, SEMANTICS)


# --------------------------------------------------------------------------- daylight saving


def test_october_repeated_hour_makes_a_day_of_fifty_periods(tmp_path):
    # 00:00 (+01:00) to 23:59 (+00:00): 24 h 59 min = 1499 minutes
    lines = ["2024-10-27 00:00:00;O;0", "2024-10-27 23:59:00;O;14.99"]
    result = run(tmp_path / "oct.txt", lines)

    periods = result.halfhour_energy
    assert len(periods) == 50 and set(periods["day"]) == {day("2024-10-27")}
    assert periods["period_start"].iloc[0] == utc("2024-10-26 23:00")
    assert list(periods["energy_kwh"]) == pytest.approx([0.3] * 49 + [0.29])
    assert len(result.q3) == 50
    local = list(result.q3["period_start"].astype(str))
    assert local[2:6] == [
        "2024-10-27 01:00:00+01:00",
        "2024-10-27 01:30:00+01:00",
        "2024-10-27 01:00:00+00:00",
        "2024-10-27 01:30:00+00:00",
    ]


def test_naive_time_in_the_repeated_hour_is_its_first_occurrence(tmp_path):
    lines = ["2024-10-27 01:30:00;A;1", "2024-10-27T01:30:00+00:00;B;1"]
    result = run(tmp_path / "oct.txt", lines)

    assert rows(result.readings, "sensor_id", "timestamp") == [
        ("A", utc("2024-10-27 00:30")),
        ("B", utc("2024-10-27 01:30")),
    ]


def test_march_skipped_hour_makes_a_day_of_forty_six_periods(tmp_path):
    lines = ["2024-03-31 00:00:00;M;0", "2024-04-01 00:00:00;M;23"]
    result = run(tmp_path / "mar.txt", lines)

    periods = result.pieces
    assert len(periods) == 46 and set(periods["day"]) == {day("2024-03-31")}
    assert list(periods["kwh"]) == pytest.approx([0.5] * 46)
    # 09:00 local is 08:00 UTC after the switch: the summer schedule (cheias)
    at_nine = periods[periods["period_start"] == utc("2024-03-31 08:00")]
    assert list(at_nine["band"]) == ["cheias"]


def test_naive_time_in_the_skipped_hour_uses_the_offset_before_the_switch(tmp_path):
    # 01:30 does not exist: read as +00:00, i.e. 02:30 summer time, the same
    # instant as the later 02:30 reading, which is therefore a duplicate
    lines = ["2024-03-31 01:30:00;G;1", "2024-03-31 02:30:00;G;1"]
    result = run(tmp_path / "mar.txt", lines)

    assert list(result.readings["timestamp"]) == [utc("2024-03-31 01:30")]
    assert result.quarantine_counts == {"duplicate": 1}


# --------------------------------------------------------------------------- the views


def test_views_sort_by_value_then_sensor_descending_with_ties_below_1e9(tmp_path):
    lines = [
        "2024-02-04 10:00:00;F;0",  # yesterday only: in the month, 0 today
        "2024-02-04 11:00:00;F;5",
        *(f"2024-02-05 10:00:00;{s};0" for s in "ABCDE"),
        "2024-02-05 11:00:00;A;1.0000000004",  # within 1e-9 of the others: a tie
        *(f"2024-02-05 11:00:00;{s};1" for s in "BCD"),
        "2024-02-05 11:00:00;E;2",
    ]
    result = run(tmp_path / "views.txt", lines)

    assert result.now == utc("2024-02-05 11:00")
    assert list(result.q1["sensor_id"]) == ["F", "E", "D", "C", "B", "A"]
    assert list(result.q2["sensor_id"]) == ["E", "D", "C", "B", "A", "F"]
    assert list(result.q4["sensor_id"]) == ["E", "D", "C", "B", "A", "F"]
    per_kwh = 0.5 * 0.2400 + 0.5 * 0.1741  # 10:00 ponta, 10:30 cheias
    assert rows(result.q4, "cost_eur") == approx_rows(
        [(2 * per_kwh,), *[(per_kwh,)] * 4, (0.0,)]
    )
    assert list(result.q2["energy_kwh"])[-1] == 0.0


def test_q3_has_the_periods_of_today_before_now_and_a_column_per_sensor(tmp_path):
    lines = [
        "2024-02-05 09:40:00;B;0",
        "2024-02-05 10:10:00;B;3",
        "2024-02-05 10:20:00;A;0",
        "2024-02-05 10:40:00;A;1",
    ]
    result = run(tmp_path / "q3.txt", lines)

    q3 = result.q3
    assert list(q3.columns) == ["period_start", "A", "B"]
    assert len(q3) == 22  # 00:00 .. 10:30: the last starts before now (10:40)
    assert str(q3["period_start"].iloc[0]) == "2024-02-05 00:00:00+00:00"
    assert q3.iloc[:19][["A", "B"]].isna().all().all()
    expected = pd.DataFrame({"A": [None, 0.5, 0.5], "B": [2.0, 1.0, None]}, dtype=float)
    pd.testing.assert_frame_equal(q3.iloc[19:][["A", "B"]].reset_index(drop=True), expected)


def test_at_local_midnight_today_is_the_new_empty_day(tmp_path):
    lines = ["2024-02-05 23:30:00;S;1", "2024-02-06 00:00:00;S;1.5"]
    result = run(tmp_path / "midnight.txt", lines)

    assert result.now == utc("2024-02-06 00:00")
    assert rows(result.q1, "sensor_id", "energy_kwh") == approx_rows([("S", 0.5)])
    assert rows(result.q2, "sensor_id", "energy_kwh") == [("S", 0.0)]
    assert list(result.q3.columns) == ["period_start", "S"] and result.q3.empty


def test_tariff_schedules_must_cover_the_day_once(tmp_path):
    text = Path(SEMANTICS.tariff).read_text().replace(
        'super_vazio = ["02:00-06:00"]', 'super_vazio = ["02:00-05:30"]', 1
    )
    path = tmp_path / "tariff.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match="does not cover the day"):
        reference.tariff_rows(path)
    seed = [r for r in reference.tariff_rows(SEMANTICS.tariff) if r[0] == "su-tri-diario"]
    assert len(seed) == 2 * 3 * 48  # seasons x day types (a daily cycle: the same) x slots


# --------------------------------------------------------------------------- properties

START = datetime(2024, 3, 30, tzinfo=UTC)  # the window crosses the March switch


def _write(lines: list[str]) -> Path:
    handle = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    with handle:
        handle.write("".join(f"{line}\n" for line in lines))
    return Path(handle.name)


def _answers(lines: list[str], semantics=SEMANTICS, **kwargs) -> OracleResult:
    path = _write(lines)
    try:
        return compute_answers(path, semantics, **kwargs)
    finally:
        path.unlink()


@st.composite
def plausible_series(draw) -> list[tuple[datetime, float]]:
    """In-order readings of one meter: any gaps, rises within max_power, some resets."""
    count = draw(st.integers(2, 25))
    at, energy, out = START, draw(st.floats(0, 1e5)), []
    for _ in range(count):
        out.append((at, energy))
        gap_s = draw(st.integers(1, 6 * 3600))
        at += timedelta(seconds=gap_s)
        if draw(st.integers(0, 9)) == 0:
            energy = draw(st.floats(0, energy))  # a reset
        else:
            energy += draw(st.floats(0, 0.99)) * SEMANTICS.max_power_kw * gap_s / 3600
    return out


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


settings.register_profile(
    "oracle", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@settings(settings.get_profile("oracle"), max_examples=30)
@given(plausible_series())
def test_pieces_add_up_to_each_interval_and_stay_in_their_period(series):
    result = _answers([f"{_iso(at)};P;{energy!r}" for at, energy in series])

    assert result.quarantine_counts.keys() <= {"counter_decrease"}
    pieces = result.pieces
    assert (pieces["kwh"] >= 0).all() and (pieces["cost_eur"] >= 0).all()
    assert (pieces["period_start"].dt.minute % 30 == 0).all()
    assert (pieces["period_start"].dt.second == 0).all()
    for (t0, e0), (t1, e1) in itertools.pairwise(series):
        mine = pieces[pieces["as_of"] == pd.Timestamp(t1)]
        assert mine["kwh"].sum() == pytest.approx(max(e1 - e0, 0), rel=1e-9, abs=1e-9)
        # one piece per half hour the interval touches, each inside the interval
        first = pd.Timestamp(t0).floor("30min")
        expected = pd.date_range(first, pd.Timestamp(t1), freq="30min", inclusive="left")
        assert list(mine["period_start"]) == list(expected)
        for _, piece in mine.iterrows():
            a = max(piece["period_start"], pd.Timestamp(t0))
            b = min(piece["period_start"] + HALF_HOUR, pd.Timestamp(t1))
            share = (b - a) / (pd.Timestamp(t1) - pd.Timestamp(t0))
            assert piece["kwh"] == pytest.approx(max(e1 - e0, 0) * share, rel=1e-9, abs=1e-12)
    total = pieces["kwh"].sum()
    for frame in (result.halfhour_energy, result.day_energy, result.month_energy):
        assert frame["energy_kwh"].sum() == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert result.day_cost["cost_eur"].sum() == pytest.approx(
        pieces["cost_eur"].sum(), rel=1e-9, abs=1e-9
    )


@settings(settings.get_profile("oracle"), max_examples=20)
@given(plausible_series(), st.data())
def test_any_arrival_within_lateness_gives_the_sorted_answers(series, data):
    # each reading is delayed by less than the lateness: whatever arrives
    # before it is at most that much later than it
    lateness = SEMANTICS.allowed_lateness_s
    delays = data.draw(
        st.lists(st.floats(0, lateness - 1), min_size=len(series), max_size=len(series))
    )
    arrival = sorted(
        range(len(series)), key=lambda i: series[i][0] + timedelta(seconds=delays[i])
    )
    lines = [f"{_iso(at)};P;{energy!r}" for at, energy in series]

    got = _answers([lines[i] for i in arrival])
    expected = _answers(lines)

    assert got.quarantine_counts.keys() <= {"counter_decrease"}
    assert_same_answers(got, expected)


def judge_directly(
    lines: list[tuple[str, int, float]], lateness_us: int, max_power_kw: float
) -> tuple[set[tuple[str, int, float]], Counter]:
    """Rules 6-10 of docs/semantics.md, read literally, one reading at a time."""
    accepted: dict[str, list[tuple[int, float]]] = {}
    events: Counter = Counter()
    for sensor, t, e in lines:
        state = accepted.setdefault(sensor, [])
        times = [a[0] for a in state]
        i = bisect.bisect_left(times, t)
        pred = state[i - 1] if i > 0 else None
        succ = state[i] if i < len(state) else None
        if state and state[-1][0] - t > lateness_us:
            events["too_late"] += 1
        elif succ and succ[0] == t:
            events["duplicate" if succ[1] == e else "conflicting_duplicate"] += 1
        elif pred and e - pred[1] > max_power_kw * (t - pred[0]) / 3600000000.0:
            events["implausible_jump"] += 1
        elif succ and succ[1] - e > max_power_kw * (succ[0] - t) / 3600000000.0:
            events["implausible_jump"] += 1  # a late reading: the interval to its successor
        else:
            state.insert(i, (t, e))
            events["counter_decrease"] += bool(pred and e < pred[1])
            events["counter_decrease"] += bool(succ and succ[1] < e)
    accepted_set = {(s, t, e) for s, state in accepted.items() for t, e in state}
    return accepted_set, +events


@st.composite
def messy_arrivals(draw) -> list[tuple[str, int, float]]:
    """A few meters in order, then late, repeated, conflicting, jumping, resetting readings."""
    out = []
    for sensor in draw(st.sampled_from(["A", "AB", "ABC"])):
        count = draw(st.integers(2, 40))
        minute, tenths, series = 0, 10_000, []
        for _ in range(count):
            minute += draw(st.integers(1, 15))
            tenths += draw(st.integers(0, 8))  # at most 0.8 kWh a minute: 48 kW
            series.append((sensor, minute, tenths / 10))
        for kind, i, k in draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["swap", "late", "dup", "conflict", "spike", "reset"]),
                    st.integers(0, count - 1),
                    st.integers(1, 12),
                ),
                max_size=8,
            )
        ):
            i = min(i, len(series) - 1)
            s, m, e = series[i]
            if kind == "swap":
                j = min(i + k, len(series) - 1)
                series[i], series[j] = series[j], series[i]
            elif kind == "late":
                series.insert(min(i + 3 * k, len(series)), series.pop(i))
            elif kind == "dup":
                series.insert(min(i + k, len(series)), (s, m, e))
            elif kind == "conflict":
                series.insert(min(i + k, len(series)), (s, m, e + 0.5))
            elif kind == "spike":
                series[i] = (s, m, e + 100)
            else:
                series[i] = (s, m, round(e - 50, 1))
        out.append(series)
    # interleave the meters (only each meter's own order matters)
    merged = []
    while any(out):
        merged += [series.pop(0) for series in out if series]
    return merged


@pytest.mark.slow(minutes=0.25)  # many examples: in make test, not test-unit
@settings(settings.get_profile("oracle"), max_examples=40)
@given(messy_arrivals(), st.sampled_from([300, 1200, 3600]), st.sampled_from([16, 1]))
def test_walk_agrees_with_a_direct_reading_of_the_rules(arrivals, lateness_s, after_bad):
    semantics = replace(SEMANTICS, allowed_lateness_s=lateness_s)
    start = datetime(2024, 2, 5, tzinfo=UTC)
    lines = [
        f"{(start + timedelta(minutes=m)).strftime('%Y-%m-%d %H:%M:%S')};{s};{e!r}"
        for s, m, e in arrivals
    ]
    start_us = int(start.timestamp()) * 1_000_000
    expected_accepted, expected_events = judge_directly(
        [(s, start_us + m * 60_000_000, e) for s, m, e in arrivals],
        lateness_s * 1_000_000,
        semantics.max_power_kw,
    )

    with mock.patch.object(reference, "WALK_AFTER_BAD", after_bad):
        result = _answers(lines, semantics)
    walked = _answers(lines, semantics, walk_all=True)

    accepted = {
        (s, int(ts.timestamp()) * 1_000_000, e)
        for s, ts, e in rows(result.readings, "sensor_id", "timestamp", "energy")
    }
    assert accepted == expected_accepted
    assert result.quarantine_counts == dict(expected_events)
    assert walked.quarantine_counts == result.quarantine_counts
    pd.testing.assert_frame_equal(walked.readings, result.readings)
    assert_same_answers(walked, result)
