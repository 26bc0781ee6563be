"""Tariff plans (conf/tariff.toml): each plan kind by hand, contracts per meter, bad conf."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from meterlake.core.errors import MeterlakeError
from meterlake.core.tariff import Tariff, load_tariff
from silver.runs import split_intervals
from silver.split import split_at_half_hours
from tests.helpers import TARIFF_FILE, ZONE, tariff, us

PLANS = tariff()


def band(plan: str, local: str) -> tuple[str, float]:
    found = PLANS.band_at(us(local + ":00"), PLANS.names.index(plan))
    return found.name, found.price


@pytest.mark.parametrize(
    ("plan", "local", "expected"),
    [
        # simple: one price all day; its prices change on 2025-01-01
        ("erse-simples", "2024-02-05 09:00", ("simples", 0.16)),
        ("erse-simples", "2024-12-31 23:30", ("simples", 0.16)),
        ("erse-simples", "2025-01-01 00:00", ("simples", 0.165)),
        # bi-horário, daily: fora de vazio 08:00-22:00 every day
        ("erse-bi-diario", "2024-02-04 07:30", ("vazio", 0.105)),
        ("erse-bi-diario", "2024-02-04 08:00", ("fora_vazio", 0.2)),
        ("erse-bi-diario", "2024-02-04 22:00", ("vazio", 0.105)),
        # tri-horário, weekly, winter: Monday 2024-02-05, Saturday 02-03, Sunday 02-04
        ("erse-tri-semanal", "2024-02-05 09:00", ("cheias", 0.175)),
        ("erse-tri-semanal", "2024-02-05 09:30", ("ponta", 0.265)),
        ("erse-tri-semanal", "2024-02-05 21:00", ("cheias", 0.175)),
        ("erse-tri-semanal", "2024-02-05 02:00", ("super_vazio", 0.095)),
        ("erse-tri-semanal", "2024-02-03 09:30", ("cheias", 0.175)),
        ("erse-tri-semanal", "2024-02-03 13:00", ("vazio", 0.105)),
        ("erse-tri-semanal", "2024-02-04 09:30", ("vazio", 0.105)),
        ("erse-tri-semanal", "2024-02-04 19:00", ("vazio", 0.105)),
        # bi-horário, weekly: a Sunday is all vazio, a weekday fora de vazio from 07:00
        ("erse-bi-semanal", "2024-02-04 12:00", ("vazio", 0.105)),
        ("erse-bi-semanal", "2024-02-05 07:00", ("fora_vazio", 0.205)),
        ("erse-bi-semanal", "2024-02-05 06:30", ("vazio", 0.105)),
        # the March switch (Sunday 2024-03-31, 01:00 UTC): Monday 03-25 is winter, 04-01
        # summer; on the weekly cycle 09:00 is cheias in winter, ponta in summer
        ("erse-tri-semanal", "2024-03-25 09:00", ("cheias", 0.175)),
        ("erse-tri-semanal", "2024-04-01 09:00", ("ponta", 0.265)),
        ("erse-tri-diario", "2024-03-31 00:30", ("vazio", 0.105)),  # winter time still
        ("erse-tri-diario", "2024-03-31 10:30", ("ponta", 0.26)),  # summer: 10:30-13:00
        # the October switch (Sunday 2024-10-27): Friday 10-25 summer, Monday 10-28 winter
        ("erse-tri-semanal", "2024-10-25 09:00", ("ponta", 0.265)),
        ("erse-tri-semanal", "2024-10-28 09:00", ("cheias", 0.175)),
        ("erse-tri-diario", "2024-10-26 10:00", ("cheias", 0.17)),
        ("erse-tri-diario", "2024-10-27 10:00", ("ponta", 0.26)),
    ],
)
def test_band_and_price_of_each_plan_kind(plan: str, local: str, expected: tuple) -> None:
    assert band(plan, local) == expected


def test_the_default_contract_is_the_seeds_tariff() -> None:
    assert PLANS.names[PLANS.default] == "su-tri-diario"
    assert PLANS.plan_of("any meter") == PLANS.default
    # the spec's worked example Y: 08:50-09:10, 0.6 kWh -> 0.3 x 0.1741 + 0.3 x 0.2400
    pieces = split_at_half_hours("Y", us("2024-02-05 08:50:00"), 200.0,
                                 us("2024-02-05 09:10:00"), 200.6, PLANS)  # fmt: skip
    assert sum(p.cost_eur for p in pieces) == pytest.approx(0.12423, abs=1e-12)


def contracted(meters: dict[str, str]) -> Tariff:
    return Tariff(list(PLANS.plans), ZONE, "su-tri-diario", meters)


def test_each_meter_is_priced_by_its_own_contract() -> None:
    """1 kWh from 09:00 to 10:00: on Monday 2024-02-05 under the weekly tri-horário,
    0.5 cheias (0.175) + 0.5 ponta (0.265) = 0.22 EUR; the same hour on Sunday 02-04
    is vazio, 0.105 EUR; under the default (daily) contract Monday's hour is ponta,
    0.24 EUR."""
    plans = contracted({"W": "erse-tri-semanal"})
    def cost(sensor: str, day: str) -> float:
        pieces = split_at_half_hours(sensor, us(f"{day} 09:00:00"), 10.0,
                                     us(f"{day} 10:00:00"), 11.0, plans)  # fmt: skip
        return sum(p.cost_eur for p in pieces)

    assert cost("W", "2024-02-05") == pytest.approx(0.22, abs=1e-12)
    assert cost("W", "2024-02-04") == pytest.approx(0.105, abs=1e-12)
    assert cost("D", "2024-02-05") == pytest.approx(0.24, abs=1e-12)


def test_columnar_split_prices_each_meter_as_the_scalar_path() -> None:
    plans = contracted({"W": "erse-tri-semanal", "B": "erse-bi-diario"})
    sensors = np.array(["W", "D", "B", "W"], dtype=object)
    t0 = np.array([us(f"2024-02-0{d} 08:40:00") for d in (5, 5, 4, 4)], dtype=np.int64)
    t1 = t0 + 75 * 60_000_000
    e0 = np.array([1.0, 2.0, 3.0, 4.0])
    e1 = e0 + np.array([0.5, 0.7, 0.9, 1.1])
    interval, columns = split_intervals(sensors, t0, e0, t1, e1, plans)
    scalar = [p for j in range(4) for p in split_at_half_hours(
        str(sensors[j]), int(t0[j]), float(e0[j]), int(t1[j]), float(e1[j]), plans)]  # fmt: skip
    assert list(columns["band"]) == [p.band for p in scalar]
    assert columns["price"].tolist() == [p.price for p in scalar]
    assert columns["cost_eur"].tolist() == [p.cost_eur for p in scalar]
    assert interval.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    # hand-checked: W on Monday 08:40-09:55 -> cheias, cheias, ponta (09:30-09:55)
    assert list(columns["band"][:3]) == ["cheias", "cheias", "ponta"]
    # B on Monday: fora de vazio throughout; W on Sunday: vazio throughout
    assert set(columns["band"][6:9]) == {"fora_vazio"}
    assert set(columns["band"][9:]) == {"vazio"}


def test_a_contract_survives_pickling_for_spark_workers() -> None:
    import pickle

    plans = pickle.loads(pickle.dumps(contracted({"W": "erse-simples"})))
    assert plans.plan_of("W") == plans.names.index("erse-simples")
    assert plans.band_at(us("2024-02-05 09:00:00"), plans.plan_of("W")).price == 0.16


# ----------------------------------------------------------------------- bad conf


def broken(tmp_path: Path, old: str, new: str) -> Path:
    text = TARIFF_FILE.read_text()
    assert old in text
    path = tmp_path / "tariff.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('default = "su-tri-diario"', 'default = "nope"',
         "contracts.default: unknown plan 'nope'"),
        ('# "S03" = "erse-bi-semanal"', '"S03" = "erse-bi-semanl"',
         "contracts.meters.'S03': unknown plan 'erse-bi-semanl'"),
        ("ponta = 0.2400\n", "",
         "plans.su-tri-diario.prices[0]: no price for band 'ponta' of cycle 'tri-diario'"),
        ("simples = 0.1600", "simples = 0.16\nponta = 0.3",
         "plans.erse-simples.prices[0].ponta: band 'ponta' is not in cycle 'simples'"),
        ('effective_until = "2025-01-01"', 'effective_until = "2025-02-01"',
         "plans.erse-simples.prices[1].effective_from: 2025-01-01 overlaps"),
        ('effective_until = "2025-01-01"', 'effective_until = "2024-12-01"',
         "plans.erse-simples.prices[0].effective_until: 2024-12-01 leaves a gap"),
        ("cheias = 0.1741", "cheias = -0.1741",
         "plans.su-tri-diario.prices[0].cheias: price -0.1741 must be a number >= 0"),
        ('cycle = "bi-diario"', 'cycle = "bi-daily"',
         "plans.erse-bi-diario.prices[0].cycle: unknown cycle 'bi-daily'"),
        ('super_vazio = ["02:00-06:00"]', 'super_vazio = ["02:00-05:30"]',
         "cycles.tri-diario.winter: 05:30 has no band"),
    ],
)
def test_bad_conf_is_one_error_naming_the_file_and_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = broken(tmp_path, old, new)
    with pytest.raises(MeterlakeError) as raised:
        load_tariff(path, ZONE)
    text = str(raised.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    assert message in text


def test_run_with_a_bad_plan_prints_one_line_and_starts_nothing(tmp_path: Path) -> None:
    from meterlake.core.config import CONF_DIR
    from tests.reliability_helpers import cli

    path = broken(tmp_path, 'default = "su-tri-diario"', 'default = "nope"')
    lake = tmp_path / "lake"
    result = cli(["--lake", str(lake), "--set", f"semantics.tariff={path}", "run", "--once"],
                 CONF_DIR / "meterlake.toml", timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"meterlake: error: {path}: contracts.default: unknown plan 'nope' (plans: "
        "su-tri-diario, erse-simples, erse-bi-diario, erse-bi-semanal, erse-tri-diario, "
        "erse-tri-semanal)"
    ]
    assert not lake.exists()  # no table, no checkpoint: nothing started
