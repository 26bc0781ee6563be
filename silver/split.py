"""Consumption between two readings, split at half-hour boundaries (spec section 3)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from meterlake.core.tariff import HALF_HOUR_US, Tariff


@dataclass(frozen=True)
class Piece:
    """kWh of one interval that fall in one half-hour period, with its price.

    sign is +1 for consumption and -1 for a retraction (a late reading split
    the interval: the same piece, negated)."""

    sensor_id: str
    period_start_us: int
    band: str
    price: float
    kwh: float
    cost_eur: float
    interval_start_us: int
    interval_end_us: int
    sign: int = 1


def half_hour_spans(t0_us: int, t1_us: int) -> Iterator[tuple[int, int, int]]:
    """(period_start, piece_start, piece_end) for each period [t0, t1) touches."""
    start = t0_us
    while start < t1_us:
        period = start - start % HALF_HOUR_US
        end = min(period + HALF_HOUR_US, t1_us)
        yield period, start, end
        start = end


def spread(delta, start, end, length, sign=1):
    """The share of delta that falls in [start, end) of an interval `length` long.
    Ints and floats or numpy arrays (silver.runs): the same operations in the same
    order give the same floats."""
    return sign * delta * (end - start) / length


def split_at_half_hours(
    sensor_id: str, t0_us: int, e0: float, t1_us: int, e1: float, tariff: Tariff, sign: int = 1
) -> list[Piece]:
    """Spread max(e1 - e0, 0) uniformly over [t0, t1) and cut it at every half hour.

    A decreasing register (meter reset) counts 0 kWh: its pieces carry 0."""
    if t1_us <= t0_us:
        raise ValueError("an interval needs t0 < t1")
    delta = max(e1 - e0, 0.0)
    length = t1_us - t0_us
    pieces = []
    plan = tariff.plan_of(sensor_id)  # the meter's contract
    for period, start, end in half_hour_spans(t0_us, t1_us):
        band = tariff.band_at(period, plan)
        kwh = spread(delta, start, end, length, sign)
        pieces.append(
            Piece(
                sensor_id, period, band.name, band.price, kwh, kwh * band.price, t0_us, t1_us, sign
            )
        )
    return pieces
