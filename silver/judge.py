"""One meter's messages of a micro-batch -> the stateful step's output rows.

`judge_messages` judges one sensor's messages with its `Window`: the reference
that the columnar step over many meters (silver.bucket, what Spark calls) is held
to by the tests, and, through `judge_readings`, the path that step takes for a
meter whose batch is not one plain run (late readings, duplicates, jumps, falls).
`Rows` collects the output rows of either, as columns. Everything here is plain
Python over numpy and pandas, so the tests can call it without Spark.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from meterlake.core.tariff import Tariff
from silver.message import MessageRules, Reading, Rejection, parse_message, read_canonical
from silver.meter import MeterRules, Window, judge, place_repeated
from silver.reasons import MALFORMED_JSON
from silver.runs import judge_run, run_breaks, run_end
from silver.split import Piece

NO_SENSOR = ""  # the group of messages without a readable sensor id

# One schema for everything the step emits; `kind` says which table a row is for
# (silver.stored turns these rows into the columns the tables store).
OUTPUT_COLUMNS: dict[str, str] = {
    "kind": "string",  # reading | piece | flag
    "sensor_id": "string",
    "ts_us": "bigint",  # reading: its instant; piece: the closing reading's
    "energy": "double",
    "period_start_us": "bigint",
    "band": "string",
    "price": "double",
    "kwh": "double",
    "cost_eur": "double",
    "interval_start_us": "bigint",
    "interval_end_us": "bigint",
    "sign": "int",
    "reason": "string",
    "detail": "string",
    "key": "binary",
    "value": "binary",
    "topic": "string",
    "partition": "int",
    "offset": "bigint",
    "kafka_ts_us": "bigint",
}

@dataclass(frozen=True)
class SilverRules:
    """Everything the step needs, picklable for Spark's Python workers."""

    zone: str
    min_ts_us: int
    max_clock_skew_us: int
    allowed_lateness_us: int
    max_power_kw: float
    tariff: Tariff

    def message_rules(self, now_us: int) -> MessageRules:
        return MessageRules(self.zone, self.min_ts_us, now_us + self.max_clock_skew_us)

    def meter_rules(self) -> MeterRules:
        return MeterRules(self.allowed_lateness_us, self.max_power_kw, self.tariff)


_INT64 = ("ts_us", "period_start_us", "interval_start_us", "interval_end_us", "sign")
_FLOAT64 = ("energy", "price", "kwh", "cost_eur")
_COORDINATES = ("topic", "partition", "offset", "kafka_ts_us")
_PIECE_FIELDS = tuple(f.name for f in fields(Piece))


def _column(name: str, size: int, parts: list[tuple[Any, Any]]) -> Any:
    """One output column from (positions, values) of the blocks that have it; the
    other rows are null."""
    if name in _INT64:
        data, null = np.zeros(size, dtype=np.int64), np.ones(size, dtype=bool)
        for at, values in parts:
            data[at] = values
            null[at] = False
        ints = pd.arrays.IntegerArray(data, null)
        return ints.astype("Int32") if name == "sign" else ints
    column = np.full(size, np.nan) if name in _FLOAT64 else np.empty(size, dtype=object)
    for at, values in parts:
        column[at] = values
    return column


class Rows:
    """The step's output. Rows come one at a time (the scalar path) or as column
    blocks (a run of readings, silver.runs), each taking the next positions; the frame
    is built column by column at the end, every row at its position. Only flags carry
    the raw message (key, value): readings and pieces do not need it downstream."""

    def __init__(self) -> None:
        self.size = 0
        # (positions, source messages, columns: one value per row, or one for all)
        self.blocks: list[tuple[Any, Any, dict[str, Any]]] = []
        # the scalar path's rows: (position, source message, what)
        self.r: list[tuple[int, int, Reading]] = []
        self.p: list[tuple[int, int, Piece]] = []
        self.f: list[tuple[int, int, str | None, str, str, Reading | None]] = []

    def _take(self, count: int) -> int:
        self.size += count
        return self.size - count

    def reading(self, src: int, reading: Reading) -> None:
        self.r.append((self._take(1), src, reading))

    def pieces(self, src: int, pieces: list[Piece]) -> None:
        base = self._take(len(pieces))
        self.p.extend((base + k, src, piece) for k, piece in enumerate(pieces))

    def flag(
        self, src: int, sensor_id: str | None, reason: str, detail: str,
        reading: Reading | None = None,
    ) -> None:  # fmt: skip
        self.f.append((self._take(1), src, sensor_id, reason, detail, reading))

    def run(
        self, src: np.ndarray, sensor_id: str, ts_us: np.ndarray, energy: np.ndarray,
        closing: np.ndarray, pieces: dict[str, Any],
    ) -> None:  # fmt: skip
        """A run's readings, each followed by its pieces (closing: the run's reading
        each piece belongs to, non-decreasing; silver.runs.judge_run)."""
        base = self._take(len(src) + len(closing))
        nth = np.arange(len(src))
        at = base + nth + np.searchsorted(closing, nth)
        self._block("reading", at, src, {"sensor_id": sensor_id, "ts_us": ts_us, "energy": energy})
        self._block("piece", base + np.arange(len(closing)) + closing + 1, src[closing], pieces)

    def _block(self, kind: str, at: Any, src: Any, columns: dict[str, Any]) -> None:
        if not len(at):  # most batches have no flag: fewer blocks, faster columns
            return
        if kind == "piece":  # a piece's instant is its closing reading's
            columns = {**columns, "ts_us": columns["interval_end_us"]}
        self.blocks.append((at, src, {"kind": kind, **columns}))

    def _scalar_blocks(self, messages: pd.DataFrame) -> None:
        """The scalar path's rows as blocks, one per kind and shape."""
        r = [x[2] for x in self.r]
        columns = {
            "sensor_id": [x.sensor_id for x in r],
            "ts_us": [x.ts_us for x in r],
            "energy": [x.energy for x in r],
        }
        self._block("reading", [x[0] for x in self.r], [x[1] for x in self.r], columns)
        p = [x[2] for x in self.p]
        columns = {name: [getattr(x, name) for x in p] for name in _PIECE_FIELDS}
        self._block("piece", [x[0] for x in self.p], [x[1] for x in self.p], columns)
        for has_reading in (False, True) if self.f else ():  # a meter rule's flag has its reading
            f = [x for x in self.f if (x[5] is not None) == has_reading]
            f_src = np.array([x[1] for x in f], dtype=np.int64)
            columns = {
                "sensor_id": [x[2] for x in f],
                "reason": [x[3] for x in f],
                "detail": [x[4] for x in f],
                "key": messages["key"].to_numpy()[f_src],
                "value": messages["value"].to_numpy()[f_src],
            }
            if has_reading:
                columns["ts_us"] = [x[5].ts_us for x in f]  # type: ignore[union-attr]
                columns["energy"] = [x[5].energy for x in f]  # type: ignore[union-attr]
            self._block("flag", [x[0] for x in f], f_src, columns)

    def frame(self, messages: pd.DataFrame) -> pd.DataFrame:
        self._scalar_blocks(messages)
        src = np.zeros(self.size, dtype=np.int64)
        for at, block_src, _ in self.blocks:
            src[at] = block_src
        built = {name: messages[name].to_numpy()[src] for name in _COORDINATES}
        for name in OUTPUT_COLUMNS.keys() - built.keys():
            parts = [(at, columns[name]) for at, _, columns in self.blocks if name in columns]
            built[name] = _column(name, self.size, parts)
        return pd.DataFrame({name: built[name] for name in OUTPUT_COLUMNS})


def _fast_fields(messages: pd.DataFrame) -> tuple[list[int | None], list[float]]:
    """The fields the JVM read (silver.job.with_fields): per message, the instant (None
    where Python must parse the value) and the energy."""
    if "fast_ts_us" not in messages:  # called without Spark (tests, the bench profile)
        return [None] * len(messages), [0.0] * len(messages)
    ts = messages["fast_ts_us"]
    energy = messages["fast_energy"]
    usable = ts.notna() & energy.notna()
    fast = [int(t) if ok else None for t, ok in zip(ts.tolist(), usable.tolist(), strict=True)]
    return fast, energy.tolist()


def judge_messages(
    sensor_key: str, messages: pd.DataFrame, window: Window, rules: SilverRules, now_us: int,
    *, runs: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """Judge one sensor's messages of a micro-batch; mutates window.

    A batch is a set, not a sequence (semantics §7): its readings are judged in
    timestamp order, ties by (partition, offset), so the result does not depend on
    how the producer spread them over partitions. Judged in that order, a reading is
    `too_late` exactly when it is older than the allowed lateness behind the
    sensor's latest accepted reading *before* the batch: the readings of the batch
    judged before it are no later than it is. runs=False judges every reading one at
    a time, the reference the runs of silver.runs must equal (the tests)."""
    messages = messages.reset_index(drop=True)
    out = Rows()
    message_rules = rules.message_rules(now_us)
    values = messages["value"].tolist()
    partition = messages["partition"].to_numpy()
    offset = messages["offset"].to_numpy()
    readings: list[tuple[int, Reading]] = []
    fast_ts, fast_energy = _fast_fields(messages)
    for i in np.lexsort((offset, partition)).tolist():
        result: Reading | Rejection | None = None
        if fast_ts[i] is not None:
            result = read_canonical(sensor_key, fast_ts[i], fast_energy[i], message_rules)
        if result is None:
            result = parse_message(values[i], message_rules)
        if isinstance(result, Rejection):
            out.flag(i, result.sensor_id, result.reason, result.detail)
        elif result.sensor_id != sensor_key:  # Spark's JSON reader and ours disagree: refuse
            out.flag(i, result.sensor_id, MALFORMED_JSON.code, "JSON Spark reads differently")
        else:
            readings.append((i, result))
    readings.sort(key=lambda r: r[1].ts_us)  # stable: ties stay in Kafka order
    readings = place_repeated(window, readings)
    judge_readings(sensor_key, readings, window, rules.meter_rules(), out, runs)
    return out.frame(messages)


MIN_RUN = 8  # a shorter run costs more in numpy (some 150 µs) than one reading at a time


def judge_readings(
    sensor_key: str, readings: list[tuple[int, Reading]], window: Window, rules: MeterRules,
    out: Rows, runs: bool,
) -> None:  # fmt: skip
    """Judge the sorted readings: a run of them (silver.runs) at once, any other one
    alone with silver.meter.judge; the window decides where the next run may start."""
    count = len(readings)
    runs = runs and count >= MIN_RUN  # too few readings for a run: no arrays
    if runs:
        src = np.fromiter((i for i, _ in readings), np.int64, count)
        ts_us = np.fromiter((r.ts_us for _, r in readings), np.int64, count)
        energy = np.fromiter((r.energy for _, r in readings), np.float64, count)
        breaks = run_breaks(ts_us, energy, rules.max_power_kw)
    k = 0
    while k < count:
        end = run_end(window, ts_us, energy, k, breaks, rules.max_power_kw) if runs else k
        if end - k >= MIN_RUN:
            closing, pieces = judge_run(window, sensor_key, ts_us[k:end], energy[k:end], rules)
            out.run(src[k:end], sensor_key, ts_us[k:end], energy[k:end], closing, pieces)
            k = end
            continue
        i, reading = readings[k]
        verdict = judge(window, reading.sensor_id, reading.ts_us, reading.energy, rules,
                        ambiguous=reading.repeat_us > 0)
        if verdict.accepted:
            out.reading(i, reading)
        for flag in verdict.flags:
            out.flag(i, reading.sensor_id, flag.reason, flag.detail, reading)
        if verdict.pieces:
            out.pieces(i, verdict.pieces)
        k += 1
