"""`query bill` on gold rows written by hand (delta-rs, no Spark): the power term, the
VAT split across the reduced-rate threshold, the three power levels; bad bill conf."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from meterlake.core.bill import load_bill_terms
from meterlake.core.config import Config, load_config
from meterlake.core.errors import MeterlakeError
from meterlake.read.questions import query_more
from tests.helpers import TARIFF_FILE
from tests.report_lake import write_table

NOW = datetime(2024, 2, 15, 12, 0, tzinfo=UTC)  # day 15 of February: 15 days so far
FEB = date(2024, 2, 1)


def _tariff(tmp_path: Path) -> Path:
    path = tmp_path / "tariff.toml"
    path.write_text(TARIFF_FILE.read_text().replace(
        '# "S03" = 3.45', '"B" = 3.45\n"C" = 10.35', 1))  # fmt: skip
    return path


def _lake(tmp_path: Path) -> Config:
    """A: 150 kWh, 30 EUR on its contract (6.9 kVA, the default); B: 60 kWh, 12 EUR
    (3.45 kVA); C: 50 kWh, 10 EUR (10.35 kVA). Another plan's row each, not billed."""
    lake = tmp_path / "lake"
    month = [("A", 150.0), ("B", 60.0), ("C", 50.0)]
    write_table(lake, "month_energy", [
        {"sensor_id": s, "month": FEB, "energy_kwh": kwh, "as_of": NOW, "updated_at": NOW}
        for s, kwh in month])  # fmt: skip
    costs = [("A", "su-tri-diario", 30.0), ("A", "erse-simples", 28.0),
             ("B", "su-tri-diario", 12.0), ("B", "erse-simples", 9.0),
             ("C", "su-tri-diario", 10.0), ("C", "erse-simples", 11.0)]  # fmt: skip
    write_table(lake, "month_plan_cost", [
        {"sensor_id": s, "month": FEB, "plan": p, "cost_eur": c, "as_of": NOW, "updated_at": NOW}
        for s, p, c in costs])  # fmt: skip
    config = load_config()
    return replace(config, lake=lake,
                   semantics=replace(config.semantics, tariff=_tariff(tmp_path)))  # fmt: skip


def test_the_bill_so_far_by_hand(tmp_path: Path) -> None:
    result = query_more(_lake(tmp_path), "bill")
    assert result.columns == ["sensor_id", "days", "energy_kwh", "power_kva", "vat_reduced_kwh",
                              "energy_eur", "power_eur", "vat_eur", "total_eur"]  # fmt: skip
    got = {r[0]: r[1:] for r in result.rows}
    # A: 15 x 0.33 = 4.95 EUR power; reduced kWh = min(150, 200 x 15 / 30) = 100;
    # VAT = 30 x (100 x 0.06 + 50 x 0.23) / 150 + 4.95 x 0.23 = 3.5 + 1.1385
    assert got["A"] == pytest.approx((15, 150.0, 6.9, 100.0, 30.0, 4.95, 4.6385, 39.5885))
    # B (3.45 kVA): all 60 kWh under the threshold, power term reduced too:
    # VAT = 12 x 0.06 + 3.0 x 0.06 = 0.9
    assert got["B"] == pytest.approx((15, 60.0, 3.45, 60.0, 12.0, 3.0, 0.9, 15.9))
    # C (10.35 kVA): above 6.9 kVA, no reduced rate: VAT = (10 + 7.2) x 0.23 = 3.956
    assert got["C"] == pytest.approx((15, 50.0, 10.35, 0.0, 10.0, 7.2, 3.956, 21.156))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('# "S03" = 3.45', '"S03" = 4.6', "bill.meters.'S03': 4.6 kVA has no daily charge"),
        ("vat_standard = 0.23", "vat_standard = -0.23", "bill.vat_standard: -0.23 must be"),
        ("power_kva = 6.9", "power_kva = 6.9\nvat = 1", "bill.vat: unknown setting"),
    ],
)
def test_bad_bill_conf_is_one_line_naming_the_key(tmp_path, old, new, message) -> None:
    path = tmp_path / "tariff.toml"
    path.write_text(TARIFF_FILE.read_text().replace(old, new, 1))
    with pytest.raises(MeterlakeError, match=f"^{path}: ") as raised:
        load_bill_terms(path)
    assert message in str(raised.value)
