"""Steps of event time (`replay FILE --step 1h`, `run --once --step 1h`).

Gold commits a batch's increments step by step, in event-time order, so a catch-up
leaves one version of each gold table per step of event time (gold.job), as of
the readings before the step's end. A step is a number and a unit of at least a
minute; its ends are multiples of it in local wall-clock time counted from the
epoch, so a step that divides a day (1h, 30min, 1d) ends at midnight, and October's
repeated hour is one step.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from meterlake.core.errors import MeterlakeError

if TYPE_CHECKING:
    from meterlake.core.config import Config

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


def with_step(config: Config, step: timedelta) -> Config:
    """The config with gold committing per `step` of event time."""
    text = f"{step // timedelta(seconds=1)}s"
    return replace(config, streams=replace(config.streams, gold_step=text))


def step_micros(text: str) -> int | None:
    """A step's length in microseconds; None for "" (one gold version per batch)."""
    if not text:
        return None
    return parse_step(text) // timedelta(microseconds=1)


def step_end_sql(column: str, zone: str, step_us: int) -> str:
    """Spark SQL: the end of the step a time falls in, as microseconds of local wall
    clock since the epoch; a time on a step's end belongs to the next step."""
    local = f"unix_micros(from_utc_timestamp({column}, '{zone}'))"
    return f"(div({local}, {step_us}) + 1) * {step_us}"
