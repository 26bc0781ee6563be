"""The bill's terms beyond energy: conf/tariff.toml `[bill]` -> contracted power (kVA)
per meter, its daily charge, and VAT by the Portuguese rule (a reduced rate on the
first `vat_reduced_kwh_per_30_days` kWh per 30 days for contracts up to
`vat_reduced_max_kva`; on the power term for contracts up to `vat_power_reduced_max_kva`;
the standard rate on the rest). Checked like the plans: one line naming file and key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meterlake.core.errors import MeterlakeError


@dataclass(frozen=True)
class BillTerms:
    power_kva: float = 6.9  # every meter's contracted power, unless in meters
    power_eur_per_day: tuple[tuple[float, float], ...] = ((6.9, 0.3271),)  # kVA -> EUR/day
    vat_reduced: float = 0.06
    vat_standard: float = 0.23
    vat_reduced_kwh_per_30_days: float = 200.0
    vat_reduced_max_kva: float = 6.9
    vat_power_reduced_max_kva: float = 3.45
    meters: tuple[tuple[str, float], ...] = ()  # (sensor id, kVA) overrides


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise MeterlakeError(f"{key}: {value!r} must be a number >= 0")
    return float(value)


def parse_bill(data: dict[str, Any]) -> BillTerms:
    bill = data.get("bill", {})
    if not isinstance(bill, dict):
        raise MeterlakeError("bill: expected a table")
    known = set(BillTerms.__dataclass_fields__)
    for key in bill:
        if key not in known:
            raise MeterlakeError(f"bill.{key}: unknown setting")
    scalars = {k: _number(v, f"bill.{k}") for k, v in bill.items()
               if k not in ("power_eur_per_day", "meters")}  # fmt: skip
    charges = tuple(sorted(
        (_number(float(kva), f"bill.power_eur_per_day.{kva}"),
         _number(eur, f"bill.power_eur_per_day.{kva}"))
        for kva, eur in bill.get("power_eur_per_day", {"6.9": 0.3271}).items()
    ))  # fmt: skip
    meters = tuple((str(s), _number(k, f"bill.meters.{s!r}"))
                   for s, k in bill.get("meters", {}).items())  # fmt: skip
    terms = BillTerms(power_eur_per_day=charges, meters=meters, **scalars)
    powers = {kva for kva, _ in charges}
    for key, kva in [("bill.power_kva", terms.power_kva),
                     *((f"bill.meters.{s!r}", k) for s, k in meters)]:  # fmt: skip
        if kva not in powers:
            raise MeterlakeError(f"{key}: {kva} kVA has no daily charge in bill.power_eur_per_day")
    return terms


def load_bill_terms(path: Path) -> BillTerms:
    try:
        return parse_bill(tomllib.loads(Path(path).read_text()))
    except (ValueError, TypeError) as exc:  # a kVA key that is not a number
        raise MeterlakeError(f"{path}: bill: {exc}") from None
    except MeterlakeError as exc:
        raise MeterlakeError(f"{path}: {exc}") from None
