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

import pandas as pd

from silver.message import MessageRules, Reading, Rejection, parse_message
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


class _Rows:
    """Output rows as tuples in OUTPUT_COLUMNS order. Only flags carry the raw
    message (key, value): readings and pieces do not need it downstream."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def reading(self, msg: Any, reading: Reading) -> None:
        self.rows.append((
            "reading", reading.sensor_id, reading.ts_us, reading.energy,
            None, None, None, None, None, None, None, None, None, None, None, None,
            msg.topic, msg.partition, msg.offset, msg.kafka_timestamp,
        ))  # fmt: skip

    def piece(self, msg: Any, p: Piece) -> None:
        self.rows.append((
            "piece", p.sensor_id, p.interval_end_us, None, p.period_start_us, p.band, p.price,
            p.kwh, p.cost_eur, p.interval_start_us, p.interval_end_us, p.sign, None, None,
            None, None, msg.topic, msg.partition, msg.offset, msg.kafka_timestamp,
        ))  # fmt: skip

    def flag(
        self, msg: Any, sensor_id: str | None, reason: str, detail: str,
        reading: Reading | None = None,
    ) -> None:  # fmt: skip
        self.rows.append((
            "flag", sensor_id, reading and reading.ts_us, reading and reading.energy,
            None, None, None, None, None, None, None, None, reason, detail, msg.key, msg.value,
            msg.topic, msg.partition, msg.offset, msg.kafka_timestamp,
        ))  # fmt: skip

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame.from_records(self.rows, columns=list(OUTPUT_COLUMNS))
        for name in ("ts_us", "period_start_us", "interval_start_us", "interval_end_us"):
            frame[name] = frame[name].astype("Int64")
        frame["sign"] = frame["sign"].astype("Int32")
        for name in ("energy", "price", "kwh", "cost_eur"):
            frame[name] = frame[name].astype("float64")
        return frame


def judge_messages(
    sensor_key: str, messages: pd.DataFrame, window: Window, rules: SilverRules, now_us: int
) -> pd.DataFrame:
    """Judge one sensor's messages of a micro-batch, in Kafka order; mutates window."""
    out = _Rows()
    message_rules = rules.message_rules(now_us)
    meter_rules = rules.meter_rules()
    for msg in messages.sort_values(["partition", "offset"]).itertuples(index=False):
        result: Reading | Rejection = parse_message(msg.value, message_rules)
        if isinstance(result, Rejection):
            out.flag(msg, result.sensor_id, result.reason, result.detail)
        elif result.sensor_id != sensor_key:  # Spark's JSON reader and ours disagree: refuse
            out.flag(msg, result.sensor_id, "malformed_json", "JSON Spark reads differently")
        else:
            verdict = judge(window, result.sensor_id, result.ts_us, result.energy, meter_rules)
            if verdict.accepted:
                out.reading(msg, result)
            for flag in verdict.flags:
                out.flag(msg, result.sensor_id, flag.reason, flag.detail, result)
            for piece in verdict.pieces:
                out.piece(msg, piece)
    return out.frame()


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
