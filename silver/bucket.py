"""The stateful silver step over a bucket of meters: one call judges many meters.

Spark groups bronze rows by a hash bucket of the sensor id (silver.job.judged), so
one call of the step gets the messages of every meter of its bucket in a
micro-batch, and one state row holds the windows of all the bucket's meters
(`Windows`, packed arrays). A meter more in a batch then costs a few numpy
elements, not a pandas frame and a call of its own (0.62 ms per meter group when
the step was called once per sensor).

The work is columnar where it can be:
- a message in the publishers' form, whose fields the JVM read (silver.job.with_fields),
  becomes a reading without Python touching it; any other message goes through
  silver.message.parse_message, one at a time, as before;
- the readings of every meter are sorted at once, by meter, then timestamp, then
  (partition, offset), the order silver.judge.judge_messages judges one meter's
  batch in (semantics §7: a batch is a set);
- a meter whose readings all follow its latest accepted one (later, no fall, no
  implausible rise: silver.runs.follows), as most meters' do in most batches, is
  accepted whole, its pieces cut for all such meters in one silver.runs.split_intervals;
- any other meter (a late reading, a duplicate, a jump, a fall) is judged by
  silver.judge's own per-meter path, the reference that the tests hold the columnar
  one to.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from silver.judge import Rows, SilverRules, judge_readings
from silver.message import Reading, Rejection, parse_message, repeats_after_us
from silver.meter import Window, place_repeated
from silver.reasons import MALFORMED_JSON
from silver.runs import follows, split_intervals
from silver.stored import encode, stored_rows

# One state row per bucket: the bucket's meter ids (joined by a newline, which a
# valid sensor id never holds), the length of each meter's window, and the windows'
# readings one after another (int64 µs, float64 kWh); the messages it holds until the
# release horizon passes them (MESSAGE_COLUMNS as an Arrow IPC stream) and that horizon.
STATE_DDL = (
    "sensors BINARY, counts BINARY, ts_us BINARY, energy BINARY, held BINARY, "
    "released_before BIGINT"
)
STATE_LAYOUT = "windows and held messages"  # pinned with the checkpoint (silver.job)
_SEPARATOR = "\n"
# A message as the step takes it from Spark (silver.job.judged).
MESSAGE_COLUMNS = [
    "sensor_key", "key", "value", "topic", "partition", "offset", "kafka_ts_us",
    "fast_ts_us", "fast_energy", "fast_naive",
]


@dataclass(frozen=True)
class Windows:
    """The windows (silver.meter.Window) of many meters, as columns: `ids[k]`'s
    window is `ts_us[start[k]:start[k] + counts[k]]` (sorted), with its energy."""

    ids: np.ndarray  # object (str), one per meter
    counts: np.ndarray  # int64
    ts_us: np.ndarray  # int64
    energy: np.ndarray  # float64

    @staticmethod
    def empty() -> Windows:
        return Windows(
            np.array([], dtype=object), np.zeros(0, np.int64), np.zeros(0, np.int64),
            np.zeros(0, np.float64),
        )  # fmt: skip

    @staticmethod
    def unpack(sensors: bytes, counts: bytes, ts_us: bytes, energy: bytes) -> Windows:
        ids = sensors.decode("utf-8").split(_SEPARATOR) if sensors else []
        return Windows(
            np.array(ids, dtype=object), np.frombuffer(counts, np.int64).copy(),
            np.frombuffer(ts_us, np.int64).copy(), np.frombuffer(energy, np.float64).copy(),
        )  # fmt: skip

    def pack(self) -> tuple[bytes, bytes, bytes, bytes]:
        sensors = _SEPARATOR.join(self.ids.tolist()).encode("utf-8")
        return sensors, self.counts.tobytes(), self.ts_us.tobytes(), self.energy.tobytes()

    @staticmethod
    def of(windows: dict[str, Window]) -> Windows:
        """From one Window per meter (the tests, and the per-meter path's results)."""
        ids = [sensor for sensor, window in windows.items() if window.ts_us]
        return Windows(
            np.array(ids, dtype=object),
            np.array([len(windows[s].ts_us) for s in ids], dtype=np.int64),
            np.array([t for s in ids for t in windows[s].ts_us], dtype=np.int64),
            np.array([e for s in ids for e in windows[s].energy], dtype=np.float64),
        )

    def as_dict(self) -> dict[str, Window]:
        ends = np.cumsum(self.counts).tolist()
        return {
            sensor: Window(self.ts_us[end - n:end].tolist(), self.energy[end - n:end].tolist())
            for sensor, n, end in zip(self.ids.tolist(), self.counts.tolist(), ends, strict=True)
        }

    def meter_of_reading(self) -> np.ndarray:
        """For each stored reading, the position of its meter in ids."""
        return np.repeat(np.arange(len(self.ids)), self.counts)


def _message_readings(
    messages: pd.DataFrame, rules: SilverRules, now_us: int, out: Rows
) -> tuple[np.ndarray, ...]:
    """Each message -> a reading (source row, sensor id, instant, kWh, and for a naive
    time of the repeated hour how much later its second occurrence is), or a flag in
    out. The JVM's fields are taken as they are where the message rules cannot reject
    them (silver.message.read_canonical); the other messages are parsed in Python."""
    message_rules = rules.message_rules(now_us)
    keys = messages["sensor_key"].to_numpy(dtype=object)
    count = len(messages)
    fast_ts = messages["fast_ts_us"] if "fast_ts_us" in messages else None
    if fast_ts is None:  # called without Spark: every message parsed in Python
        fast = np.zeros(count, dtype=bool)
        ts, energy = np.zeros(count, np.int64), np.zeros(count, np.float64)
    else:
        energy_col = messages["fast_energy"]
        known = (fast_ts.notna() & energy_col.notna()).to_numpy()
        ts = fast_ts.fillna(0).to_numpy(dtype=np.int64)
        energy = energy_col.fillna(0.0).to_numpy(dtype=np.float64)
        fast = known & (ts >= message_rules.min_ts_us) & (ts <= message_rules.max_ts_us)
    src = np.flatnonzero(fast)
    sensors, ts, energy = keys[src], ts[src], energy[src]
    repeat = np.zeros(len(src), dtype=np.int64)
    if "fast_naive" in messages:
        naive = messages["fast_naive"].eq(True).to_numpy(dtype=bool)[src]
        repeat[naive] = repeats_after_us(rules.zone, ts[naive])
    slow: list[tuple[int, Reading]] = []
    values = messages["value"].to_numpy(dtype=object)
    for i in np.flatnonzero(~fast).tolist():
        result = parse_message(values[i], message_rules)
        if isinstance(result, Rejection):
            out.flag(i, result.sensor_id, result.reason, result.detail)
        elif result.sensor_id != keys[i]:  # Spark's JSON reader and ours disagree: refuse
            out.flag(i, result.sensor_id, MALFORMED_JSON.code, "JSON Spark reads differently")
        else:
            slow.append((i, result))
    if slow:
        src = np.concatenate([src, np.array([i for i, _ in slow], dtype=np.int64)])
        sensors = np.concatenate([sensors, np.array([r.sensor_id for _, r in slow], object)])
        ts = np.concatenate([ts, np.array([r.ts_us for _, r in slow], dtype=np.int64)])
        energy = np.concatenate([energy, np.array([r.energy for _, r in slow], np.float64)])
        repeat = np.concatenate([repeat, np.array([r.repeat_us for _, r in slow], np.int64)])
    return src, sensors, ts, energy, repeat


def _trimmed(meter: np.ndarray, ts_us: np.ndarray, energy: np.ndarray, lateness_us: int):
    """Readings of many meters -> each meter's window (silver.meter.trim): sorted by
    meter then time, keeping each meter's readings within the lateness of its latest
    and the one just before them."""
    if not len(meter):
        return meter, ts_us, energy
    order = np.lexsort((ts_us, meter))
    meter, ts_us, energy = meter[order], ts_us[order], energy[order]
    last = np.append(meter[1:] != meter[:-1], True)  # each meter's latest reading
    latest = np.repeat(ts_us[last], np.diff(np.append(-1, np.flatnonzero(last))))
    recent = ts_us >= latest - lateness_us
    keep = recent.copy()
    keep[:-1] |= recent[1:] & (meter[1:] == meter[:-1])  # the baseline just before
    return meter[keep], ts_us[keep], energy[keep]


def judge_bucket(
    messages: pd.DataFrame, windows: Windows, rules: SilverRules, now_us: int
) -> tuple[pd.DataFrame, Windows]:
    """Judge the messages of many meters of one micro-batch, with their windows ->
    the step's output rows (silver.judge.OUTPUT_COLUMNS) and the new windows. Gives
    the rows judge_messages gives meter by meter (in another order) and its windows."""
    messages = messages.reset_index(drop=True)
    out = Rows()
    src, sensors, ts, energy, repeat = _message_readings(messages, rules, now_us, out)
    meter_rules = rules.meter_rules()

    # One code per meter, the stored ones first (codes < len(windows.ids)).
    codes, ids = pd.factorize(np.concatenate([windows.ids, sensors]))
    ids = np.asarray(ids, dtype=object)
    stored = codes[: len(windows.ids)]
    code = codes[len(windows.ids):]
    has_window = np.zeros(len(ids), dtype=bool)
    has_window[stored] = True
    latest_ts = np.zeros(len(ids), np.int64)
    latest_energy = np.zeros(len(ids), np.float64)
    ends = np.cumsum(windows.counts) - 1
    latest_ts[stored] = windows.ts_us[ends]
    latest_energy[stored] = windows.energy[ends]

    # The batch's readings in judging order: meter, time, partition, offset.
    partition = messages["partition"].to_numpy()[src]
    offset = messages["offset"].to_numpy()[src]
    order = np.lexsort((offset, partition, ts, code))
    src, sensors, ts, energy = src[order], sensors[order], ts[order], energy[order]
    code, repeat = code[order], repeat[order]
    first = np.ones(len(code), dtype=bool)
    first[1:] = code[1:] != code[:-1]
    prev_ts = np.where(first, latest_ts[code], np.roll(ts, 1))
    prev_energy = np.where(first, latest_energy[code], np.roll(energy, 1))
    has_prev = ~first | has_window[code]
    fits = ~has_prev | follows(prev_ts, prev_energy, ts, energy, meter_rules.max_power_kw)
    broken = np.zeros(len(ids), dtype=bool)
    broken[code[~fits | (repeat > 0)]] = True  # repeated hours: silver.meter.place_repeated
    whole = ~broken[code]

    # The meters accepted whole: their readings, and the pieces of their intervals.
    with_prev = np.flatnonzero(has_prev[whole])
    w_src, w_sensor, w_ts, w_energy = src[whole], sensors[whole], ts[whole], energy[whole]
    interval, pieces = split_intervals(
        w_sensor[with_prev], prev_ts[whole][with_prev], prev_energy[whole][with_prev],
        w_ts[with_prev], w_energy[with_prev], meter_rules.tariff,
    )  # fmt: skip
    out.run(w_src, w_sensor, w_ts, w_energy, with_prev[interval], pieces)

    # The other meters, one at a time, as judge_messages judges them.
    stored_code = stored[windows.meter_of_reading()]  # each stored reading's meter
    untouched = ~broken[stored_code]
    kept_meter = [stored_code[untouched], code[whole]]
    kept_ts = [windows.ts_us[untouched], w_ts]
    kept_energy = [windows.energy[untouched], w_energy]
    # A meter's readings are contiguous in judging order, its window in the state:
    # both sliced, not searched, per meter.
    meters = np.flatnonzero(broken)
    firsts, lasts = np.searchsorted(code, meters), np.searchsorted(code, meters, side="right")
    window_end = np.cumsum(windows.counts)
    slot = dict(zip(stored.tolist(), range(len(stored)), strict=True))
    for meter, first_k, last_k in zip(meters.tolist(), firsts.tolist(), lasts.tolist(),
                                      strict=True):  # fmt: skip
        at = slot.get(meter)
        held = slice(window_end[at] - windows.counts[at], window_end[at]) if at is not None else (
            slice(0, 0))  # fmt: skip
        window = Window(windows.ts_us[held].tolist(), windows.energy[held].tolist())
        readings = [
            (int(src[k]), Reading(ids[meter], int(ts[k]), float(energy[k]), int(repeat[k])))
            for k in range(first_k, last_k)
        ]
        readings = place_repeated(window, readings)
        judge_readings(ids[meter], readings, window, meter_rules, out, runs=True)
        kept_meter.append(np.full(len(window.ts_us), meter, dtype=np.int64))
        kept_ts.append(np.array(window.ts_us, dtype=np.int64))
        kept_energy.append(np.array(window.energy, dtype=np.float64))

    meter, new_ts, new_energy = _trimmed(
        np.concatenate(kept_meter), np.concatenate(kept_ts), np.concatenate(kept_energy),
        meter_rules.allowed_lateness_us,
    )  # fmt: skip
    present, counts = np.unique(meter, return_counts=True)
    new = Windows(ids[present], counts.astype(np.int64), new_ts, new_energy)
    return out.frame(messages), new


def _held(stream: bytes) -> pd.DataFrame | None:
    return pa.ipc.open_stream(stream).read_all().to_pandas() if stream else None


def _hold(messages: pd.DataFrame) -> bytes:
    if not len(messages):
        return b""
    return encode(pa.Table.from_pandas(messages[MESSAGE_COLUMNS], preserve_index=False))


def release(
    messages: pd.DataFrame, held: pd.DataFrame | None, horizon_us: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The messages to judge now (produced before the release horizon: no partition
    can still bring an earlier one, bronze.horizon) and those to hold, of a batch's
    messages and those held before."""
    if held is not None:
        messages = pd.concat([held, messages], ignore_index=True)
    ready = messages["kafka_ts_us"].to_numpy() < horizon_us
    return messages[ready], messages[~ready]


def judge_buckets(rules: SilverRules, hold: bool):
    """The function for applyInPandasWithState: one call per bucket and micro-batch,
    yielding its output rows as one value (silver.stored: the stored columns, Arrow).
    `hold`: judge only the messages the release horizon has passed (silver.job.judged);
    otherwise every message as it comes."""

    def judge_bucket_state(
        key: tuple[int], frames: Iterable[pd.DataFrame], state: Any
    ) -> Iterator[pd.DataFrame]:
        rows = pd.concat(list(frames), ignore_index=True)
        stored = state.get if state.exists else None
        windows = Windows.unpack(*stored[:4]) if stored else Windows.empty()
        latest = rows["released_before_us"].max()  # NaN: no horizon in this batch
        horizon = max(stored[5] if stored else 0, 0 if pd.isna(latest) else int(latest))
        messages = rows[~rows["is_tick"].astype(bool)][MESSAGE_COLUMNS]
        if hold:
            messages, held = release(messages, _held(stored[4]) if stored else None, horizon)
        else:
            held = messages.iloc[:0]
        if len(messages):
            frame, windows = judge_bucket(messages, windows, rules, time.time_ns() // 1000)
            yield pd.DataFrame({"rows": [encode(stored_rows(frame, rules.zone))]})
        if len(windows.ids) or len(held):
            state.update((*windows.pack(), _hold(held), horizon))

    return judge_bucket_state
