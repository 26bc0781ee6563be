"""The stateful silver step: bronze messages of one sensor -> output rows.

Spark groups bronze rows by the sensor id found in the JSON (an empty key
for messages without one) and calls `judge_group` with the group's rows of one
micro-batch and the sensor's `Window` from the state store. Everything here is
plain Python over pandas, so the tests can call it without Spark.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from silver.message import MessageRules, Reading, Rejection, parse_message, read_canonical
from silver.meter import MeterRules, Window, judge
from silver.split import Piece
from silver.tariff import Tariff

NO_SENSOR = ""  # the group of messages without a readable sensor id

# One schema for everything the step emits; `kind` says which table a row is for.
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
    "kafka_timestamp": "timestamp",
}
OUTPUT_DDL = ", ".join(f"`{name}` {kind}" for name, kind in OUTPUT_COLUMNS.items())
# The window in the state store: two packed arrays (int64 µs, float64 kWh).
STATE_DDL = "ts_us BINARY, energy BINARY"

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


_INT64 = ("ts_us", "period_start_us", "interval_start_us", "interval_end_us")
_FLOAT64 = ("energy", "price", "kwh", "cost_eur")
_COORDINATES = ("topic", "partition", "offset", "kafka_timestamp")


def _ints(values: list[int | None], dtype: str = "Int64") -> pd.api.extensions.ExtensionArray:
    mask = np.fromiter((v is None for v in values), bool, len(values))
    data = np.fromiter((0 if v is None else v for v in values), np.int64, len(values))
    array = pd.arrays.IntegerArray(data, mask)
    return array if dtype == "Int64" else array.astype(dtype)


def _floats(values: list[float | None]) -> np.ndarray:
    return np.fromiter((np.nan if v is None else v for v in values), np.float64, len(values))


class _Rows:
    """The step's output, collected per kind and built column by column at the end
    (in message order, as the rows were produced). Only flags carry the raw message
    (key, value): readings and pieces do not need it downstream."""

    def __init__(self) -> None:
        self.kinds: list[int] = []  # 0 reading, 1 piece, 2 flag, in output order
        self.r_src: list[int] = []  # the message each row came from (its position)
        self.r: list[Reading] = []
        self.p_src: list[int] = []
        self.p: list[Piece] = []
        self.f_src: list[int] = []
        self.f: list[tuple[str | None, str, str, Reading | None]] = []

    def reading(self, src: int, reading: Reading) -> None:
        self.kinds.append(0)
        self.r_src.append(src)
        self.r.append(reading)

    def pieces(self, src: int, pieces: list[Piece]) -> None:
        self.kinds.extend([1] * len(pieces))
        self.p_src.extend([src] * len(pieces))
        self.p.extend(pieces)

    def flag(
        self, src: int, sensor_id: str | None, reason: str, detail: str,
        reading: Reading | None = None,
    ) -> None:  # fmt: skip
        self.kinds.append(2)
        self.f_src.append(src)
        self.f.append((sensor_id, reason, detail, reading))

    def frame(self, messages: pd.DataFrame) -> pd.DataFrame:
        r, p, f = self.r, self.p, self.f
        nr, np_, nf = len(r), len(p), len(f)
        kinds = np.array(self.kinds, dtype=np.int8)
        # Columns are built kind block after kind block; `order` puts the rows back
        # in the order they were produced.
        order = np.empty(len(kinds), dtype=np.int64)
        for kind, base, count in ((0, 0, nr), (1, nr, np_), (2, nr + np_, nf)):
            order[kinds == kind] = np.arange(base, base + count)
        none_r, none_p, none_f = [None] * nr, [None] * np_, [None] * nf
        f_reading = [x[3] for x in f]
        columns: dict[str, Any] = {
            "kind": ["reading"] * nr + ["piece"] * np_ + ["flag"] * nf,
            "sensor_id": [x.sensor_id for x in r] + [x.sensor_id for x in p] + [x[0] for x in f],
            "ts_us": [x.ts_us for x in r]
            + [x.interval_end_us for x in p]
            + [x and x.ts_us for x in f_reading],
            "energy": [x.energy for x in r] + none_p + [x and x.energy for x in f_reading],
            "period_start_us": none_r + [x.period_start_us for x in p] + none_f,
            "band": none_r + [x.band for x in p] + none_f,
            "price": none_r + [x.price for x in p] + none_f,
            "kwh": none_r + [x.kwh for x in p] + none_f,
            "cost_eur": none_r + [x.cost_eur for x in p] + none_f,
            "interval_start_us": none_r + [x.interval_start_us for x in p] + none_f,
            "interval_end_us": none_r + [x.interval_end_us for x in p] + none_f,
            "sign": none_r + [x.sign for x in p] + none_f,
            "reason": none_r + none_p + [x[1] for x in f],
            "detail": none_r + none_p + [x[2] for x in f],
        }
        built: dict[str, Any] = {}
        for name, values in columns.items():
            if name in _INT64:
                array = _ints(values)
            elif name == "sign":
                array = _ints(values, "Int32")
            elif name in _FLOAT64:
                array = _floats(values)
            else:
                array = np.array(values, dtype=object)
            built[name] = array[order]
        f_src = np.array(self.f_src, dtype=np.int64)
        for name in ("key", "value"):
            raw = np.empty(nr + np_ + nf, dtype=object)
            raw[nr + np_ :] = messages[name].to_numpy()[f_src]
            built[name] = raw[order]
        src = np.array(self.r_src + self.p_src + self.f_src, dtype=np.int64)[order]
        for name in _COORDINATES:
            built[name] = messages[name].to_numpy()[src]
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
    sensor_key: str, messages: pd.DataFrame, window: Window, rules: SilverRules, now_us: int
) -> pd.DataFrame:
    """Judge one sensor's messages of a micro-batch; mutates window.

    A batch is a set, not a sequence (semantics §7): its readings are judged in
    timestamp order, ties by (partition, offset), so the result does not depend on
    how the producer spread them over partitions. Judged in that order, a reading is
    `too_late` exactly when it is older than the allowed lateness behind the
    sensor's latest accepted reading *before* the batch: the readings of the batch
    judged before it are no later than it is."""
    messages = messages.reset_index(drop=True)
    out = _Rows()
    message_rules = rules.message_rules(now_us)
    meter_rules = rules.meter_rules()
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
            out.flag(i, result.sensor_id, "malformed_json", "JSON Spark reads differently")
        else:
            readings.append((i, result))
    readings.sort(key=lambda r: r[1].ts_us)  # stable: ties stay in Kafka order
    for i, reading in readings:
        verdict = judge(window, reading.sensor_id, reading.ts_us, reading.energy, meter_rules)
        if verdict.accepted:
            out.reading(i, reading)
        for flag in verdict.flags:
            out.flag(i, reading.sensor_id, flag.reason, flag.detail, reading)
        if verdict.pieces:
            out.pieces(i, verdict.pieces)
    return out.frame(messages)


def pack_window(window: Window) -> tuple[bytes, bytes]:
    return array("q", window.ts_us).tobytes(), array("d", window.energy).tobytes()


def unpack_window(ts_us: bytes, energy: bytes) -> Window:
    ts, en = array("q"), array("d")
    ts.frombytes(ts_us)
    en.frombytes(energy)
    return Window(ts.tolist(), en.tolist())


def judge_group(rules: SilverRules):
    """The function for applyInPandasWithState (one call per sensor per batch)."""

    def judge_group_state(
        key: tuple[str], frames: Iterable[pd.DataFrame], state: Any
    ) -> Iterator[pd.DataFrame]:
        sensor_key = key[0]
        messages = pd.concat(list(frames), ignore_index=True)
        window = unpack_window(*state.get) if state.exists else Window()
        frame = judge_messages(sensor_key, messages, window, rules, time.time_ns() // 1000)
        if sensor_key != NO_SENSOR and window.ts_us:
            state.update(pack_window(window))
        yield frame

    return judge_group_state
