"""Batches cut by produce time, not by offsets (bronze.horizon, silver.bucket.release).

Spark's Kafka source cuts a catch-up by offsets, each partition in proportion to
its lag; silver judges only what was produced before the batch's release horizon
and holds the rest in its state. Whatever the cuts, the step then gives the rows of
one batch holding everything: the oracle's answer for a catch-up in one batch.
"""

from __future__ import annotations

import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bronze.horizon import ALL, release_horizon
from silver.bucket import judge_buckets
from silver.stored import decode
from tests.silver.test_bucket import _State, frame, from_spark, message, tick
from tests.silver.test_judge_runs import RULES, local

T0 = local("2024-02-05 00:00:00")
PRODUCED = 1_706_745_600_000_000  # µs; one message a millisecond, in file order
MINUTE = 60 * 10**6


def test_a_message_waits_in_the_state_until_the_horizon_passes_it() -> None:
    step, state = judge_buckets(RULES, hold=True), _State()
    rows = frame([message("X", (T0 + k * 10 * MINUTE, 1.0 + k), 0, k, True) for k in range(3)])
    rows["kafka_ts_us"] = [PRODUCED, PRODUCED + 1000, PRODUCED + 2000]
    (out,) = step((0,), [from_spark(rows, PRODUCED + 1500), tick(PRODUCED + 1500)], state)
    judged = decode(out["rows"])
    assert judged.filter(judged["kind"].to_numpy(zero_copy_only=False) == "reading")[
        "offset"].to_pylist() == [0, 1]
    assert state.value[5] == PRODUCED + 1500  # the horizon, kept
    assert state.value[4] != b""  # the third message, held
    assert list(step((0,), [tick(PRODUCED + 1900)], state)) == []  # not passed yet
    (out,) = step((0,), [tick(ALL)], state)  # a batch without messages of this bucket
    judged = decode(out["rows"])
    assert judged["offset"].to_pylist() == [2, 2]  # the reading, and its interval's piece
    assert state.value[4] == b""


def _catch_up(messages: pd.DataFrame, rnd: random.Random, hold: bool) -> pd.DataFrame:
    """messages (produce order = row order) in batches that take a random number of
    each partition's next messages, each batch with its release horizon."""
    parts = {p: group.sort_values("offset") for p, group in messages.groupby("partition")}
    log_end = {("t", p): len(group) for p, group in parts.items()}
    read = dict.fromkeys(parts, 0)
    step, state, out, before = judge_buckets(RULES, hold), _State(), [], 0
    while any(read[p] < len(parts[p]) for p in parts):
        taken = []
        for p, group in parts.items():
            n = rnd.choice([0, 1, 3, 10, 40])
            taken.append(group.iloc[read[p]:read[p] + n])
            read[p] = min(read[p] + n, len(group))
        batch = pd.concat(taken)
        if not len(batch):
            continue
        before = release_horizon(
            {("t", p): read[p] for p in parts}, log_end,
            {("t", p): int(parts[p]["kafka_ts_us"].iloc[read[p] - 1])
             for p in parts if read[p]},
            before,
        )
        out += [decode(result["rows"])
                for result in step((0,), [from_spark(batch, before), tick(before)], state)]
    return pd.concat([t.to_pandas() for t in out], ignore_index=True)


def _one_batch(messages: pd.DataFrame) -> pd.DataFrame:
    (out,) = judge_buckets(RULES, hold=True)((0,), [from_spark(messages, ALL), tick(ALL)],
                                            _State())
    return decode(out["rows"]).to_pandas()


def _canonical(rows: pd.DataFrame) -> pd.DataFrame:
    order = ["kind", "sensor_id", "event_time", "sign", "period_start", "partition", "offset"]
    return rows.sort_values(order).reset_index(drop=True)


@st.composite
def producers(draw):
    """Meters reading every 10 minutes for hours (many times the lateness), some keyed
    (one partition), some not (any partition), their messages produced in an
    interleaving that keeps each meter's own order: a keyed month then an unkeyed
    one, or all at once."""
    meters = draw(st.integers(1, 4))
    lengths = [draw(st.integers(1, 60)) for _ in range(meters)]
    keyed = [draw(st.booleans()) for _ in range(meters)]
    queue = [m for m, n in enumerate(lengths) for _ in range(n)]
    order = draw(st.sampled_from(["one after another", "interleaved"]))
    if order == "interleaved":
        queue = draw(st.permutations(queue))
    seed = draw(st.integers(0, 2**16))
    return lengths, keyed, queue, seed


def _messages(lengths, keyed, queue, seed) -> pd.DataFrame:
    rnd = random.Random(seed)
    next_k, offsets, rows = [0] * len(lengths), [0, 0, 0], []
    for produced, m in enumerate(queue):
        k = next_k[m]
        next_k[m] += 1
        partition = m % 3 if keyed[m] else rnd.randrange(3)
        reading = (T0 + k * 10 * MINUTE + m * MINUTE, 100.0 * m + 0.25 * k)
        rows.append(message(f"M{m}", reading, partition, offsets[partition], True))
        rows[-1]["kafka_ts_us"] = PRODUCED + produced * 1000
        offsets[partition] += 1
    return frame(rows)


@pytest.mark.slow(minutes=0.2)  # many examples: in make test, not test-unit
@given(producers())
@settings(max_examples=50, deadline=None)
def test_batches_cut_by_offsets_give_the_rows_of_one_batch(producer) -> None:
    messages = _messages(*producer)
    held = _catch_up(messages, random.Random(producer[3]), hold=True)
    pd.testing.assert_frame_equal(_canonical(held), _canonical(_one_batch(messages)))


def test_without_the_horizon_the_same_cuts_make_readings_too_late() -> None:
    """The case the horizon is for: a keyed meter then an unkeyed one, cut by offsets."""
    messages = _messages([60, 60], [True, False], [0] * 60 + [1] * 60, seed=3)
    as_cut = _catch_up(messages, random.Random(3), hold=False)
    assert (as_cut["reason"] == "too_late").sum() > 0
    held = _catch_up(messages, random.Random(3), hold=True)
    assert (held["reason"] == "too_late").sum() == 0
    pd.testing.assert_frame_equal(_canonical(held), _canonical(_one_batch(messages)))
