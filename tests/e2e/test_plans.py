"""Plans compared, through the broker, Spark and Delta: each meter priced by its own
contract (Q4), every meter's month under every plan (gold month_plan_cost, `query
plans`), against the oracle and against costs computed by hand."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from meterlake.app.pipeline import run_once
from meterlake.read.answers import query_view
from meterlake.read.questions import query_more
from meterlake.tools.publish import publish_readings
from oracle import compute_answers
from tests.helpers import TARIFF_FILE, quiet, write_readings_file
from tests.reliability_helpers import assert_gold_equals_oracle

# Two meters with the same readings: 1 kWh on Sunday 2024-02-04 09:00-10:00, nothing
# until Monday 09:00, 1 kWh on Monday 09:00-10:00. W is contracted to the weekly
# tri-horário, D has the default (the seed's daily tri-horário).
READINGS = [
    (ts, sensor, energy)
    for sensor in ("W", "D")
    for ts, energy in (("2024-02-04 09:00:00", 100.0), ("2024-02-04 10:00:00", 101.0),
                       ("2024-02-05 09:00:00", 101.0), ("2024-02-05 10:00:00", 102.0))
]  # fmt: skip
# By hand (conf/tariff.toml): Sunday 09:00-10:00 and Monday 09:00-09:30 / 09:30-10:00.
# su-tri-diario: ponta both days, 2 x 0.24 | erse-simples: 2 x 0.16 | erse-bi-diario:
# fora de vazio, 2 x 0.20 | erse-bi-semanal: Sunday vazio 0.105 + Monday fora de vazio
# 0.205 | erse-tri-diario: ponta, 2 x 0.26 | erse-tri-semanal: Sunday vazio 0.105 +
# Monday 0.5 cheias x 0.175 + 0.5 ponta x 0.265 = 0.105 + 0.22.
MONTH = {
    "erse-bi-semanal": 0.31, "erse-simples": 0.32, "erse-tri-semanal": 0.325,
    "erse-bi-diario": 0.40, "su-tri-diario": 0.48, "erse-tri-diario": 0.52,
}  # fmt: skip


@pytest.mark.slow(minutes=2)
def test_plans_compared_through_the_pipeline_equal_the_oracle_and_the_hand(
    spark, kafka, config, tmp_path: Path
) -> None:
    tariff = tmp_path / "tariff.toml"
    tariff.write_text(TARIFF_FILE.read_text().replace(
        '# "S03" = "erse-bi-semanal"', '"W" = "erse-tri-semanal"', 1))  # fmt: skip
    config = replace(config, semantics=replace(config.semantics, tariff=tariff))
    readings = write_readings_file(tmp_path / "plans.txt", READINGS)
    oracle = compute_answers(readings, config.semantics)
    publish_readings(config, readings.read_text().splitlines(), speedup=0, progress=False)
    run_once(spark, config, ["bronze", "silver", "gold"], echo=quiet)

    assert_gold_equals_oracle(config, oracle)  # month_plan_cost included
    # Q4, today (Monday): W by its weekly contract 0.22, D by the default 0.24
    q4 = query_view(config, "q4")
    assert [(s, round(c, 12)) for s, c in q4.rows] == [("D", 0.24), ("W", 0.22)]

    plans = query_more(config, "plans")
    assert plans.columns == ["sensor_id", "plan", "cost_eur", "contracted", "saving_eur"]
    contract = {"W": "erse-tri-semanal", "D": "su-tri-diario"}
    expected = [
        (sensor, plan, cost, plan == contract[sensor], MONTH[contract[sensor]] - cost)
        for sensor in ("D", "W")
        for plan, cost in sorted(MONTH.items(), key=lambda item: item[1])
    ]
    got = [(s, p, round(c, 12), k, round(v, 12)) for s, p, c, k, v in plans.rows]
    assert got == [(s, p, c, k, round(v, 12)) for s, p, c, k, v in expected]
    want = oracle.plans
    assert [(s, p, bool(k)) for s, p, k in zip(want.sensor_id, want.plan, want.contracted,
                                              strict=True)] == [r[:2] + r[3:4] for r in got]
    # the contracted row equals the month cost of the contract (the four answers' tariff)
    assert next(r for r in got if r[0] == "D" and r[3])[2] == pytest.approx(
        oracle.day_cost.query("sensor_id == 'D'")["cost_eur"].sum(), abs=1e-9)
