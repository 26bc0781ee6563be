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
    "kind": "string",          # reading | piece | flag
    "sensor_id": "string",
    "ts_us": "bigint",         # reading: its instant; piece: the closing reading's
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
PIECE_FIELDS = ("period_start_us", "band", "price", "kwh", "cost_eur",
                "interval_start_us", "interval_end_us", "sign")


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
    """Column-wise output builder (fast enough for a month in one batch)."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {name: [] for name in OUTPUT_COLUMNS}

    def add(self, msg: Any, kind: str, sensor_id: str | None, **values: Any) -> None:
        for name, column in self.cols.items():
            if name in ("key", "value", "topic", "partition", "offset", "kafka_timestamp"):
                column.append(getattr(msg, name))
            elif name == "kind":
                column.append(kind)
            elif name == "sensor_id":
                column.append(sensor_id)
            else:
                column.append(values.get(name))

    def piece(self, msg: Any, piece: Piece) -> None:
        self.add(msg, "piece", piece.sensor_id, ts_us=piece.interval_end_us,
                 **{f: getattr(piece, f) for f in PIECE_FIELDS})

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.cols)
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
            out.add(msg, "flag", result.sensor_id, reason=result.reason, detail=result.detail)
            continue
        if result.sensor_id != sensor_key:  # Spark's JSON reader and ours disagree: refuse
            out.add(msg, "flag", result.sensor_id, reason="malformed_json",
                    detail="JSON that Spark's parser reads differently")
            continue
        verdict = judge(window, result.sensor_id, result.ts_us, result.energy, meter_rules)
        if verdict.accepted:
            out.add(msg, "reading", result.sensor_id, ts_us=result.ts_us, energy=result.energy)
        for flag in verdict.flags:
            out.add(msg, "flag", result.sensor_id, reason=flag.reason, detail=flag.detail,
                    ts_us=result.ts_us, energy=result.energy)
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
