from __future__ import annotations

import pytest

from meterlake.core.errors import MeterlakeError
from meterlake.core.tariff import parse_schedule
from tests.helpers import tariff, us

PRICES = {"ponta": 0.24, "cheias": 0.1741, "vazio": 0.1072, "super_vazio": 0.1072}


@pytest.mark.parametrize(
    ("local", "band", "price"),
    [
        # every boundary of the winter daily cycle (February)
        ("2024-02-05 00:00", "vazio", 0.1072),
        ("2024-02-05 01:30", "vazio", 0.1072),
        ("2024-02-05 02:00", "super_vazio", 0.1072),
        ("2024-02-05 05:30", "super_vazio", 0.1072),
        ("2024-02-05 06:00", "vazio", 0.1072),
        ("2024-02-05 07:30", "vazio", 0.1072),
        ("2024-02-05 08:00", "cheias", 0.1741),
        ("2024-02-05 08:30", "cheias", 0.1741),
        ("2024-02-05 09:00", "ponta", 0.24),
        ("2024-02-05 10:00", "ponta", 0.24),
        ("2024-02-05 10:30", "cheias", 0.1741),
        ("2024-02-05 17:30", "cheias", 0.1741),
        ("2024-02-05 18:00", "ponta", 0.24),
        ("2024-02-05 20:00", "ponta", 0.24),
        ("2024-02-05 20:30", "cheias", 0.1741),
        ("2024-02-05 21:30", "cheias", 0.1741),
        ("2024-02-05 22:00", "vazio", 0.1072),
        ("2024-02-05 23:30", "vazio", 0.1072),
        # summer (legal summer time): ponta moves to 10:30-13:00 and 19:30-21:00
        ("2024-07-10 09:00", "cheias", 0.1741),
        ("2024-07-10 10:30", "ponta", 0.24),
        ("2024-07-10 12:30", "ponta", 0.24),
        ("2024-07-10 13:00", "cheias", 0.1741),
        ("2024-07-10 18:00", "cheias", 0.1741),
        ("2024-07-10 19:30", "ponta", 0.24),
        ("2024-07-10 21:00", "cheias", 0.1741),
        ("2024-07-10 22:00", "vazio", 0.1072),
        # the switch days: winter until 01:00 UTC on the last Sunday of March
        ("2024-03-31 00:30", "vazio", 0.1072),
        ("2024-03-31 10:30", "ponta", 0.24),
        ("2024-10-27 10:00", "ponta", 0.24),
        ("2024-10-26 10:00", "cheias", 0.1741),
    ],
)
def test_band_and_price_of_each_period(local: str, band: str, price: float) -> None:
    found = tariff().band_at(us(local + ":00"))
    assert (found.name, found.price) == (band, price)


def test_schedule_must_cover_the_day() -> None:
    with pytest.raises(MeterlakeError, match="has no band"):
        parse_schedule({"vazio": ["00:00-12:00"]}, PRICES, "test")


def test_schedule_bands_must_not_overlap() -> None:
    with pytest.raises(MeterlakeError, match="overlaps"):
        parse_schedule({"vazio": ["00:00-24:00"], "ponta": ["09:00-10:00"]}, PRICES, "test")


def test_schedule_boundaries_must_be_half_hours() -> None:
    with pytest.raises(MeterlakeError, match="not on a half hour"):
        parse_schedule({"vazio": ["00:00-12:15", "12:15-24:00"]}, PRICES, "test")


def test_a_band_needs_a_price() -> None:
    with pytest.raises(MeterlakeError, match="no price"):
        parse_schedule({"other": ["00:00-24:00"]}, PRICES, "test")
