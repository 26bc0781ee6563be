"""Readings as the publisher's text lines, built in numpy: `timestamp;sensor_id;energy`.

A line is `YYYY-MM-DD HH:MM:SS;S01;1234.567\n`: the meter's local wall-clock time
(the second occurrence of October's repeated hour as ISO 8601 with its offset,
`2024-10-27T01:15:00+00:00`, so that every timestamp names one instant), the
sensor id, and the register in kWh with exactly 3 decimals (it is kept in whole
watt-hours). Lines are built a block at a time as rows of bytes: each row holds
every field at its widest, a mask keeps the bytes of each line's own fields, and
the masked rows flattened are the text. No Python string is made per line.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

LINES_PER_CHUNK = 1_000_000
STAMP = 25  # the widest timestamp: 2024-10-27T01:15:00+00:00


def wall_clock_stamps(day0: datetime, second: np.ndarray, zone: str
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The local wall-clock text of instants `second` s after the local midnight `day0`
    (naive, in `zone`), as rows of STAMP bytes and each row's length (19, or 25 for the
    second occurrence of a repeated hour, which carries its offset)."""
    tz = ZoneInfo(zone)
    origin = datetime.combine(day0.date(), time()).replace(tzinfo=tz).astimezone(UTC)
    hours, inverse = np.unique(second // 3600, return_inverse=True)
    offsets, folds = [], []
    for hour in hours.tolist():  # offsets change on the hour: one lookup an hour
        local = (origin + timedelta(hours=hour)).astimezone(tz)
        offset = local.utcoffset()
        assert offset is not None
        offsets.append(int(offset.total_seconds()))
        folds.append(bool(local.fold))
    offset_s = np.array(offsets, dtype=np.int64)[inverse]
    repeated = np.array(folds, dtype=bool)[inverse]
    utc = np.datetime64(origin.replace(tzinfo=None), "s") + second.astype("timedelta64[s]")
    local = np.datetime_as_string(utc + offset_s.astype("timedelta64[s]"), unit="s")
    stamps = np.zeros((second.size, STAMP), dtype=np.uint8)
    stamps[:, :19] = local.astype("S19").view(np.uint8).reshape(-1, 19)
    stamps[~repeated, 10] = ord(" ")
    sign = np.where(offset_s >= 0, ord("+"), ord("-"))
    hh, mm = np.divmod(np.abs(offset_s) // 60, 60)
    stamps[:, 19] = sign
    stamps[:, 20:22] = _digits(hh, 2)
    stamps[:, 22] = ord(":")
    stamps[:, 23:25] = _digits(mm, 2)
    return stamps, np.where(repeated, STAMP, 19)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers as `width` ASCII digits each, zero-padded on the left."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values[:, None] // powers % 10 + ord("0")).astype(np.uint8)


def encode_lines(
    start: str,
    sensor_ids: Sequence[str],
    second: np.ndarray,
    meter: np.ndarray,
    energy_wh: np.ndarray,
    zone: str,
    chunk: int = LINES_PER_CHUNK,
) -> Iterator[bytes]:
    """The lines of readings (parallel arrays: seconds since the local midnight of
    `start`, index into `sensor_ids`, register in Wh), each ending in a newline, as
    UTF-8 bytes `chunk` lines at a time."""
    day0 = datetime.fromisoformat(start)
    ids = np.array([s.encode("utf-8") for s in sensor_ids])
    id_width = max(1, ids.dtype.itemsize)
    id_bytes = np.frombuffer(ids.astype(f"S{id_width}").tobytes(), dtype=np.uint8).reshape(
        -1, id_width)
    id_length = np.array([len(s.encode("utf-8")) for s in sensor_ids])
    kwh_width = len(str(int(energy_wh.max() // 1000))) if energy_wh.size else 1
    for first in range(0, second.size, chunk):
        part = slice(first, first + chunk)
        yield _encode(day0, zone, second[part], id_bytes[meter[part]], id_length[meter[part]],
                      energy_wh[part], kwh_width)


def _encode(day0: datetime, zone: str, second: np.ndarray, ids: np.ndarray,
            id_length: np.ndarray, energy_wh: np.ndarray, kwh_width: int) -> bytes:
    # Readings come sorted by time: one wall-clock text per distinct second.
    distinct, inverse = np.unique(second, return_inverse=True)
    stamp_bytes, stamp_length = wall_clock_stamps(day0, distinct, zone)
    kwh, wh = np.divmod(energy_wh, 1000)
    kwh_length = np.maximum(1, np.floor(np.log10(np.maximum(kwh, 1))).astype(np.int64) + 1)
    fields = [
        (stamp_bytes[inverse], stamp_length[inverse]),
        (np.full((second.size, 1), ord(";"), np.uint8), 1),
        (ids, id_length),
        (np.full((second.size, 1), ord(";"), np.uint8), 1),
        (_digits(kwh, kwh_width), None),  # right-aligned: its leading zeros masked
        (np.full((second.size, 1), ord("."), np.uint8), 1),
        (_digits(wh, 3), 3),
        (np.full((second.size, 1), ord("\n"), np.uint8), 1),
    ]
    rows = np.hstack([values for values, _ in fields])
    keep = np.ones(rows.shape, dtype=bool)
    column = 0
    for values, length in fields:
        width = values.shape[1]
        span = np.arange(width)
        if length is None:
            keep[:, column:column + width] = span >= (kwh_width - kwh_length)[:, None]
        else:
            keep[:, column:column + width] = span < np.broadcast_to(length, second.shape)[:, None]
        column += width
    return rows[keep].tobytes()
