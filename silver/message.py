"""One Kafka message -> a reading, or the reason it is rejected (rules 1-5 of docs/semantics.md).

Pure functions, no Spark: the stateful step calls `parse_message` for every
message it sees, and the unit tests call it directly.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from silver.reasons import BAD_ENERGY, BAD_SENSOR_ID, BAD_TIMESTAMP, MALFORMED_JSON, MISSING_FIELD

EPOCH = datetime(1970, 1, 1)
# The timestamp forms accepted (docs/semantics.md): the classroom's, and ISO 8601
# extended with a `T`, fractions of a second and an offset. Python's own
# fromisoformat takes more (basic format, week dates, comma fractions): not here.
TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
MAX_SENSOR_ID = 64
FIELDS = ("timestamp", "sensor_id", "energy")
# The message as the publishers write it (json.dumps of the three fields in this
# order), with a plain sensor id, a timestamp of the years 1000-2999 in the
# classroom's form (`YYYY-MM-DD HH:MM:SS`, local time) or ISO 8601's (a `T`, up to six
# fraction digits, an offset `Z` or `±HH:MM`), and a non-negative decimal energy
# without exponent. Silver reads such a message's fields in the JVM
# (silver.job.with_fields; groups: date, time, offset, sensor id, energy);
# `read_canonical` below must give what parse_message gives for it, or defer to it.
CANONICAL = (
    r'^\{"timestamp": "([12][0-9]{3}-[0-9]{2}-[0-9]{2})[T ]'
    r'([0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?)(Z|[+-][0-9]{2}:[0-9]{2})?", '
    r'"sensor_id": "([A-Za-z0-9_.:-]{1,64})", "energy": ([0-9]{1,15}(?:\.[0-9]{1,17})?)\}$'
)


@dataclass(frozen=True)
class Reading:
    sensor_id: str
    ts_us: int  # the instant, microseconds since the epoch (UTC)
    energy: float
    # A naive time of October's repeated hour, read as its first occurrence (ts_us):
    # how much later its second occurrence is (silver.meter.place_repeated decides
    # which one the register allows). 0 for every other reading.
    repeat_us: int = 0


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str
    sensor_id: str | None = None


@dataclass(frozen=True)
class MessageRules:
    zone: str
    min_ts_us: int
    max_ts_us: int  # wall clock + allowed skew, fixed for one micro-batch


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _DuplicateKey(f"key {dup!r} repeated")
    return obj


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=200_000)
def _local_hour_offset_us(zone: str, year: int, month: int, day: int, hour: int) -> int:
    """UTC offset of a local wall-clock hour. fold=0: the first occurrence of a
    repeated hour, and the pre-switch offset for a skipped one (docs/semantics.md)."""
    offset = datetime(year, month, day, hour, tzinfo=_zone(zone)).utcoffset()
    assert offset is not None
    return offset // timedelta(microseconds=1)


@lru_cache(maxsize=200_000)
def _naive_hour_us(head: str, zone: str) -> int:
    """`YYYY-MM-DD HH` (or with a T), local -> the instant that hour starts (µs)."""
    return _parse_timestamp(head + ":00:00", zone)


@lru_cache(maxsize=64)
def repeated_hours(zone: str, year: int) -> tuple[tuple[int, int], ...]:
    """The first occurrences of the zone's repeated wall-clock times in a year, as
    (start µs, length µs): a naive time whose first-occurrence instant falls in
    [start, start + length) is shown again `length` later (October's hour in Lisbon).
    Found by the zone's offset at every hour of the year, then the minute."""
    tz = _zone(zone)
    begin = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())

    def offset(at: int) -> timedelta:
        value = datetime.fromtimestamp(at, UTC).astimezone(tz).utcoffset()
        assert value is not None
        return value

    out = []
    hours = 366 * 24 + 1
    previous = offset(begin)
    for h in range(1, hours):
        now = offset(begin + h * 3600)
        if now < previous:  # the clocks went back within this hour: find the second
            low, high = begin + (h - 1) * 3600, begin + h * 3600
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if offset(mid) == previous else (low, mid)
            length = (previous - now) // timedelta(microseconds=1)
            out.append((high * 1_000_000 - length, length))
        previous = now
    return tuple(out)


def repeat_after_us(zone: str, ts_us: int) -> int:
    """For the first-occurrence instant of a naive time: how much later the same wall
    clock time comes again (0: it does not)."""
    year = datetime.fromtimestamp(ts_us / 1e6, UTC).year
    for start, length in repeated_hours(zone, year):
        if start <= ts_us < start + length:
            return length
    return 0


def repeats_after_us(zone: str, ts_us: np.ndarray) -> np.ndarray:
    """repeat_after_us of many first-occurrence instants."""
    out = np.zeros(len(ts_us), dtype=np.int64)
    if not len(ts_us):
        return out
    first = datetime.fromtimestamp(int(ts_us.min()) / 1e6, UTC).year
    last = datetime.fromtimestamp(int(ts_us.max()) / 1e6, UTC).year
    for year in range(first, last + 1):
        for start, length in repeated_hours(zone, year):
            out[(ts_us >= start) & (ts_us < start + length)] = length
    return out


def parse_timestamp(text: str, zone: str) -> int:
    """A meter timestamp -> microseconds since the epoch. Raises ValueError."""
    # The common form, `YYYY-MM-DD HH:MM:SS` with no offset, in two steps: the
    # hour through the general path below (cached), then minutes and seconds.
    if (
        len(text) == 19
        and text[13] == ":"
        and text[16] == ":"
        and text.isascii()
        and text[14:16].isdigit()
        and text[17:19].isdigit()
    ):
        minutes, seconds = int(text[14:16]), int(text[17:19])
        if minutes < 60 and seconds < 60:
            return _naive_hour_us(text[:13], zone) + (minutes * 60 + seconds) * 1_000_000
    return _parse_timestamp(text, zone)


def _parse_timestamp(text: str, zone: str) -> int:
    text = text.strip()
    if not TIMESTAMP.fullmatch(text):
        raise ValueError(f"not a timestamp: {text[:40]!r}")
    if "." in text:  # Python takes at most 6 fraction digits: truncate to microseconds
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        return (moment.astimezone(UTC).replace(tzinfo=None) - EPOCH) // timedelta(microseconds=1)
    offset = _local_hour_offset_us(zone, moment.year, moment.month, moment.day, moment.hour)
    return (moment - EPOCH) // timedelta(microseconds=1) - offset


def _bad_sensor_id(value: object) -> str | None:
    if not isinstance(value, str):
        return f"sensor_id is a {type(value).__name__}, not a string"
    return _bad_sensor_text(value)


@lru_cache(maxsize=100_000)
def _bad_sensor_text(value: str) -> str | None:
    if not value.strip():
        return "sensor_id is empty"
    if len(value) > MAX_SENSOR_ID:
        return f"sensor_id longer than {MAX_SENSOR_ID} characters"
    if any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in value):
        return "sensor_id contains control characters"
    return None


def read_canonical(
    sensor_id: str, ts_us: int, energy: float, rules: MessageRules
) -> Reading | None:
    """A canonical message's fields as the JVM read them -> its reading, or None when
    a rule may reject it (then parse_message judges the raw value, with its detail).
    The pattern already rules out every other rule's failure."""
    if rules.min_ts_us <= ts_us <= rules.max_ts_us:
        return Reading(sensor_id, ts_us, energy)
    return None


def parse_message(value: bytes | None, rules: MessageRules) -> Reading | Rejection:
    """Validate one raw message value (rules 1-5, first failure wins)."""
    try:
        text = (value or b"").decode("utf-8")
        # A repeated key makes a message ambiguous. Checking every object is
        # slow; only a message that names one of our fields twice needs it.
        repeated = any(text.count(f'"{name}"') > 1 for name in FIELDS)
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys if repeated else None)
    except UnicodeDecodeError:
        return Rejection(MALFORMED_JSON.code, "value is not UTF-8")
    except _DuplicateKey as exc:
        return Rejection(MALFORMED_JSON.code, str(exc))
    except (ValueError, RecursionError):
        return Rejection(MALFORMED_JSON.code, "value is not JSON")
    if not isinstance(obj, dict):
        return Rejection(MALFORMED_JSON.code,
                         f"value is a JSON {type(obj).__name__}, not an object")

    absent = [f for f in FIELDS if obj.get(f) is None]
    sensor = obj.get("sensor_id")
    sensor_text = sensor if isinstance(sensor, str) else None
    if absent:
        return Rejection(MISSING_FIELD.code, f"{', '.join(absent)} absent or null", sensor_text)
    problem = _bad_sensor_id(sensor)
    if problem:
        return Rejection(BAD_SENSOR_ID.code, problem, sensor_text)
    assert isinstance(sensor, str)

    raw_ts = obj["timestamp"]
    if not isinstance(raw_ts, str):
        return Rejection(BAD_TIMESTAMP.code, "timestamp is not a string", sensor)
    try:
        ts_us = parse_timestamp(raw_ts, rules.zone)
        naive = _is_naive(raw_ts)
    except (ValueError, OverflowError):
        return Rejection(BAD_TIMESTAMP.code, f"unparseable timestamp {raw_ts[:40]!r}", sensor)
    if ts_us < rules.min_ts_us:
        return Rejection(BAD_TIMESTAMP.code, f"{raw_ts[:40]} is before the minimum timestamp",
                         sensor)
    if ts_us > rules.max_ts_us:
        return Rejection(BAD_TIMESTAMP.code, f"{raw_ts[:40]} is ahead of the wall clock", sensor)

    energy = obj["energy"]
    if isinstance(energy, bool) or not isinstance(energy, int | float):
        return Rejection(BAD_ENERGY.code, f"energy is a {type(energy).__name__}, not a number",
                         sensor)
    try:
        energy = float(energy)
    except OverflowError:  # a JSON integer beyond any double
        return Rejection(BAD_ENERGY.code, "energy is too large", sensor)
    if math.isnan(energy) or math.isinf(energy):
        return Rejection(BAD_ENERGY.code, f"energy is {energy}", sensor)
    if energy < 0:
        return Rejection(BAD_ENERGY.code, "energy is negative", sensor)
    return Reading(sensor, ts_us, energy, repeat_after_us(rules.zone, ts_us) if naive else 0)


def _is_naive(text: str) -> bool:
    """A timestamp (already parsed) without an offset: wall-clock time in the zone."""
    tail = text.strip()[19:]
    return not (tail.endswith("Z") or "+" in tail or "-" in tail)
