"""Replay in steps of event time (`meterlake replay FILE --step 1h`).

A plain replay publishes the whole file and catches up once, so gold gets one
or two versions and time travel shows nothing in between. In steps, the file is
cut at every multiple of the step in local wall-clock time (from the midnight
before the first reading); each piece is published and caught up on its own,
so each step leaves one version of every gold table whose answers moved, as of
the last reading before the step's end. `query qN --at TIME` then finds the
version that stood at that moment of the data.

Within a piece the lines keep their file order (the arrival order); a line
that cannot be read goes with the piece of the line before it (the publisher
reports and skips it), and so does a late line, older than the piece being
cut. Wall-clock steps make October's repeated hour one step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.tools.publish import BadLine, is_header, parse_line

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_STEP = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|hour|d|day)s?\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "sec": "seconds", "m": "minutes", "min": "minutes",
          "h": "hours", "hour": "hours", "d": "days", "day": "days"}


def parse_step(text: str) -> timedelta:
    """'1h', '30min', '1d', '90s' -> a timedelta of at least a minute."""
    found = _STEP.match(text)
    if not found:
        raise MeterlakeError(
            f"--step wants a number and a unit (s, min, h, d), e.g. 1h; got {text!r}"
        )
    step = timedelta(**{_UNITS[found.group(2).lower()]: int(found.group(1))})
    if step < timedelta(minutes=1):
        raise MeterlakeError(f"--step must be at least 1 minute, not {text!r}")
    return step


@dataclass(frozen=True)
class Piece:
    end: datetime  # naive local wall-clock time: the piece holds readings before it
    lines: list[str]


def cut_by_event_time(lines: Iterable[str], step: timedelta, zone: ZoneInfo) -> list[Piece]:
    """The lines in pieces of `step` of event time, in order; empty pieces left out."""
    pieces: list[Piece] = []
    origin: datetime | None = None
    current: list[str] = []
    end: datetime | None = None
    for line in lines:
        if not line.strip() or is_header(line):
            continue
        try:
            at = parse_line(line, zone).at
        except BadLine:
            current.append(line)
            continue
        if origin is None:
            origin = at.replace(hour=0, minute=0, second=0, microsecond=0)
        piece_end = origin + step * ((at - origin) // step + 1)
        if end is not None and piece_end > end and current:  # a late line stays behind
            pieces.append(Piece(end, current))
            current = []
        end = piece_end if end is None else max(end, piece_end)
        current.append(line)
    if current:
        pieces.append(Piece(end or datetime.min, current))
    return pieces


def replay_in_steps(spark: SparkSession, config: Config, path: Path, step: timedelta,
                    echo: Callable[[str], None] = print) -> int:
    """Publish and catch up on each piece of `path` in turn; returns the number of steps."""
    from meterlake.app.pipeline import run_once
    from meterlake.core.catalog import LAYERS
    from meterlake.tools.publish import publish_readings

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MeterlakeError(f"cannot read {path}: {exc}") from None
    pieces = cut_by_event_time(lines, step, ZoneInfo(config.semantics.zone))
    for number, piece in enumerate(pieces, start=1):
        sent = publish_readings(config, piece.lines, speedup=0, source=str(path), progress=False)
        timings = run_once(spark, config, list(LAYERS), echo=lambda _: None)
        echo(f"step {number}/{len(pieces)}: {sent.sent:,} readings before "
             f"{piece.end:%Y-%m-%d %H:%M}, caught up in {sum(timings.values()):.1f} s")
    return len(pieces)
