"""Small helpers shared by the tests (no fixtures here)."""
from __future__ import annotations

from pathlib import Path

from meterlake.config import PROJECT_ROOT
from silver.message import parse_timestamp
from silver.tariff import Tariff, load_tariff

ZONE = "Europe/Lisbon"
TARIFF_FILE = PROJECT_ROOT / "conf" / "tariff.toml"


def tariff() -> Tariff:
    return load_tariff(TARIFF_FILE, ZONE)


def us(local: str) -> int:
    """A Lisbon wall-clock (or offset-bearing) timestamp -> µs since the epoch."""
    return parse_timestamp(local, ZONE)


def write_lines(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    path.write_text("".join(f"{ts};{sensor};{energy}\n" for ts, sensor, energy in rows))
    return path
