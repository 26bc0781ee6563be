"""Checkpoint misuse (issue 7, item 5): one writer per checkpoint, damaged files, fresh ids.

Spark's exactly-once holds only with one running query per checkpoint, a
readable checkpoint, and a checkpoint that belongs to its tables; Spark checks
none of that across processes. meterlake.core.checkpoints does, before a query
starts; these tests misuse checkpoints on purpose and check that each misuse
fails fast with one clear line and that no gold row is ever doubled.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from meterlake.app.pipeline import run_once
from meterlake.core import checkpoints
from meterlake.core.catalog import LAYER_TABLES
from meterlake.core.errors import MeterlakeError
from meterlake.core.location import location
from meterlake.core.storage import filesystem
from meterlake.tools.generate import MonthSpec, write_readings
from meterlake.tools.publish import publish_readings
from oracle import compute_answers
from tests.helpers import quiet
from tests.reliability_helpers import FAST_STREAMS, assert_gold_equals_oracle, cli, live, write_conf

ALL = ["bronze", "silver", "gold"]
SPEC = MonthSpec(meters=2, days=1, cadence_s=300, seed=7)
GOOD_OFFSETS = (
    'v1\n{"batchWatermarkMs":0,"batchTimestampMs":1,"conf":{}}\n{"energy":{"0":10,"1":0}}'
)


@pytest.fixture
def readings(tmp_path: Path) -> Path:
    path = tmp_path / "readings.csv"
    write_readings(SPEC, path)
    return path


def _publish(config, readings: Path) -> None:
    publish_readings(config, readings.read_text().splitlines(), speedup=0, progress=False)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    """The CLI's error: exit 1, no Python traceback, one `meterlake: error:` line."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("meterlake: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def _txn_app_ids(table: Path) -> list[str]:
    """The Delta transaction ids (txnAppId) recorded in a table's log, in commit order."""
    ids = []
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "txn" in action and action["txn"]["appId"] not in ids:
                ids.append(action["txn"]["appId"])
    return ids


# --------------------------------------------------------------------------- no Spark


@pytest.mark.parametrize("where", ["local", "object store"])
def test_a_checkpoint_lock_is_exclusive_across_processes_and_dies_with_its_holder(
    tmp_path, where
):
    """On an object store the lock is a local file named after the checkpoint's URI:
    the same behaviour, for the processes of one machine."""
    if where == "local":
        checkpoint = location(tmp_path / "_checkpoints" / "bronze")
    else:
        checkpoint = location(f"s3://bucket/{tmp_path.name}/_checkpoints/bronze")
        assert checkpoints.lock_file(checkpoint) != checkpoints.lock_file(
            location(f"s3://bucket/{tmp_path.name}/_checkpoints/silver"))
    take = (
        "from meterlake.core.checkpoints import lock; "
        "from meterlake.core.location import location; "
        f"lock(location({str(checkpoint)!r}), 'bronze')"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import time; {take}; print('held', flush=True); "
         "time.sleep(120)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        held_by = f"{re.escape(str(checkpoint))} is in use by pid {holder.pid} on "
        with pytest.raises(MeterlakeError, match=held_by):
            checkpoints.lock(checkpoint, "bronze")
        holder.kill()  # kill -9: the kernel releases the lock
        holder.wait()
        taken = checkpoints.lock(checkpoint, "bronze")
        again = checkpoints.lock(checkpoint, "bronze")  # re-entrant in one process
        assert taken and again
        taken.release()
        again.release()
    finally:
        holder.kill()
        holder.wait()
    # released: another process can take it
    other = subprocess.run([sys.executable, "-c", take], capture_output=True, text=True,
                           check=False)
    assert other.returncode == 0, other.stderr


@pytest.mark.parametrize(
    ("file", "content", "why"),
    [
        ("offsets/1", b"garbage\n{not json", "has no version line"),
        ("offsets/1", b"", "has no version line"),
        ("offsets/1", b"v1\n", "is incomplete"),
        (
            "offsets/1",
            b'v1\n{"batchWatermarkMs":0}\n{"energy":{"0":',
            "has a source offsets line that is not JSON",
        ),
        ("offsets/1", b"\xff\xfe\x00binary", "is not UTF-8"),
        ("offsets/0", b"v1", "is incomplete"),  # the second latest is read too
        ("commits/1", b"v1\n{nope", "has a metadata line that is not JSON"),
        ("metadata", b"{}", "has no query id"),
        ("metadata", b"\x00\x00", "is not the JSON Spark writes"),
    ],
)
def test_a_damaged_checkpoint_file_is_named_in_one_line(tmp_path, file, content, why):
    checkpoint = tmp_path / "gold_ckpt"
    for name in ("offsets/0", "offsets/1"):
        (checkpoint / name).parent.mkdir(parents=True, exist_ok=True)
        (checkpoint / name).write_text(GOOD_OFFSETS)
    (checkpoint / "commits").mkdir()
    (checkpoint / "commits" / "0").write_text('v1\n{"nextBatchWatermarkMs":0}')
    (checkpoint / "commits" / "1").write_text('v1\n{"nextBatchWatermarkMs":0}')
    (checkpoint / "metadata").write_text('{"id":"4b1c6f1e-0000-4000-8000-000000000000"}')
    checkpoints.validate(checkpoint, "day_energy")  # intact: passes
    (checkpoint / file).write_bytes(content)
    with pytest.raises(MeterlakeError) as error:
        checkpoints.validate(checkpoint, "day_energy")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("the day_energy query's checkpoint is damaged: ")
    assert f"{checkpoint / file} {why}" in message


def test_a_fresh_checkpoint_refuses_to_write_into_a_table_with_rows(config, lake_at):
    """On a local lake, and on one on the store (the checkpoint listed there)."""
    from deltalake import write_deltalake

    config = replace(config, lake=lake_at("lake"))
    path = config.table_path("day_energy")
    write_deltalake(str(path), _one_gold_row(), mode="append")
    with pytest.raises(MeterlakeError, match="day_energy already holds rows: starting over would"):
        checkpoints.check_in_step(config, "day_energy", ("day_energy",))
    offset = config.checkpoint("day_energy") / "offsets" / "0"
    if isinstance(offset, Path):
        offset.parent.mkdir(parents=True)
        offset.write_text(GOOD_OFFSETS)
    else:
        store = filesystem(config.storage)
        with store.open_output_stream(f"{offset.bucket}/{offset.key}") as out:
            out.write(GOOD_OFFSETS.encode())
    checkpoints.check_in_step(config, "day_energy", ("day_energy",))  # in step: fine
    if isinstance(offset, Path):
        offset.unlink()
    else:
        store.delete_file(f"{offset.bucket}/{offset.key}")
    write_deltalake(str(path), _one_gold_row().slice(0, 0), mode="overwrite")
    checkpoints.check_in_step(config, "day_energy", ("day_energy",))  # empty table: fine


def test_silver_state_keeps_the_layout_it_was_written_with(config, lake_at):
    """The meter buckets are pinned in a fresh silver checkpoint (local, or on the
    store); another count, or a checkpoint with batches from before the pin (state
    keyed per sensor), is one clear error, never state read as empty."""
    config = replace(config, lake=lake_at("lake"))
    checkpoint = config.checkpoint("silver")
    checkpoints.pin_layout(checkpoint, "silver", {"meter_buckets": 32}, config.storage)
    checkpoints.pin_layout(checkpoint, "silver", {"meter_buckets": 32}, config.storage)
    with pytest.raises(MeterlakeError, match=r"meter_buckets was 32, now 64\): set it back"):
        checkpoints.pin_layout(checkpoint, "silver", {"meter_buckets": 64}, config.storage)
    older = config.checkpoint("silver-older")
    offset = older / "offsets" / "0"
    if isinstance(offset, Path):
        offset.parent.mkdir(parents=True)
        offset.write_text(GOOD_OFFSETS)
    else:
        with filesystem(config.storage).open_output_stream(f"{offset.bucket}/{offset.key}") as out:
            out.write(GOOD_OFFSETS.encode())
    with pytest.raises(MeterlakeError, match="holds state from an older meterlake"):
        checkpoints.pin_layout(older, "silver", {"meter_buckets": 32}, config.storage)


def _one_gold_row():
    from datetime import UTC, date, datetime

    import pyarrow as pa

    at = datetime(2024, 2, 1, 12, tzinfo=UTC)
    return pa.table(
        {
            "sensor_id": ["S01"],
            "day": [date(2024, 2, 1)],
            "energy_kwh": [1.5],
            "as_of": pa.array([at], pa.timestamp("us", "UTC")),
            "updated_at": pa.array([at], pa.timestamp("us", "UTC")),
        }
    )


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow(minutes=0.7)
def test_a_second_instance_fails_fast_and_no_gold_row_is_doubled(
    spark, kafka, config, readings, tmp_path
):
    """`meterlake run` runs live in another process; a second `run --once` (CLI or in
    process) fails in seconds, naming the first one's pid; the first one's answers stand."""
    oracle = compute_answers(readings, config.semantics)
    _publish(config, readings)
    conf = write_conf(tmp_path / "live.toml", config, FAST_STREAMS)
    with live(conf, tmp_path / "live.log") as first:
        first.wait_running()
        started = time.monotonic()
        second = cli(["run", "--once"], conf)
        cli_seconds = time.monotonic() - started
        line = _one_error_line(second)
        assert f"in use by pid {first.process.pid} on " in line
        assert "one running query per checkpoint" in line
        assert cli_seconds < 30, cli_seconds  # no JVM was started
        started = time.monotonic()
        with pytest.raises(MeterlakeError, match=f"in use by pid {first.process.pid}"):
            run_once(spark, config, ALL, echo=quiet)
        assert time.monotonic() - started < 5
        assert first.interrupt() == 0, first.output()[-2000:]
    run_once(spark, config, ALL, echo=quiet)
    assert_gold_equals_oracle(config, oracle)


@pytest.mark.slow
def test_a_damaged_offset_file_fails_fast_and_no_gold_row_is_doubled(
    spark, kafka, config, readings, tmp_path, monkeypatch
):
    oracle = compute_answers(readings, config.semantics)
    _publish(config, readings)
    run_once(spark, config, ALL, echo=quiet)
    assert_gold_equals_oracle(config, oracle)

    offsets = config.checkpoint("gold") / "offsets"
    latest = offsets / str(max(int(p.name) for p in offsets.iterdir() if p.name.isdigit()))
    intact = latest.read_bytes()
    latest.write_bytes(b"\x00garbage\x00 from a bad disk")

    conf = write_conf(tmp_path / "meterlake.toml", config)
    started = time.monotonic()
    line = _one_error_line(cli(["run", "--once"], conf))
    assert time.monotonic() - started < 30  # before the JVM
    assert f"checkpoint is damaged: {latest} has no version line" in line

    # Past meterlake's own check, Spark's error is translated into one line too.
    monkeypatch.setattr(checkpoints, "validate", lambda checkpoint, query: None)
    with pytest.raises(MeterlakeError) as error:
        run_once(spark, config, ["gold"], echo=quiet)
    message = str(error.value)
    assert "\n" not in message
    assert "the gold query's checkpoint is damaged: Spark cannot read it" in message
    assert_gold_equals_oracle(config, oracle)  # the failed run changed nothing

    latest.write_bytes(intact)
    run_once(spark, config, ALL, echo=quiet)
    assert_gold_equals_oracle(config, oracle)


@pytest.mark.slow
def test_a_fresh_gold_checkpoint_gets_a_fresh_idempotency_id(spark, kafka, config, readings):
    """gold/job.py keys its commits on (table + the checkpoint's query id, batch id). A new
    checkpoint must not inherit the old id, or its batches would be skipped as done."""
    oracle = compute_answers(readings, config.semantics)
    _publish(config, readings)
    run_once(spark, config, ALL, echo=quiet)
    table = config.table_path("day_energy")
    checkpoint = config.checkpoint("gold")
    first_id = json.loads((checkpoint / "metadata").read_text())["id"]
    assert _txn_app_ids(table) == [f"day_energy-{first_id}"]

    # The checkpoint alone is gone: starting over would add everything again.
    shutil.rmtree(checkpoint)
    with pytest.raises(MeterlakeError, match="day_cost, month_plan_cost already hold rows"):
        run_once(spark, config, ["gold"], echo=quiet)
    assert_gold_equals_oracle(config, oracle)

    # Emptied tables (their logs, and the old transaction ids, stay) + fresh checkpoint:
    # the new query has a new id, so its batch 0 is applied instead of skipped.
    for name in LAYER_TABLES["gold"]:
        spark.sql(f"DELETE FROM delta.`{config.table_path(name)}`")
    run_once(spark, config, ["gold"], echo=quiet)
    second_id = json.loads((checkpoint / "metadata").read_text())["id"]
    assert second_id != first_id
    assert _txn_app_ids(table) == [f"day_energy-{first_id}", f"day_energy-{second_id}"]
    assert_gold_equals_oracle(config, oracle)

    # Checkpoint and tables deleted: gold is written again from silver.
    shutil.rmtree(checkpoint)
    for name in LAYER_TABLES["gold"]:
        shutil.rmtree(config.table_path(name))
    run_once(spark, config, ["gold"], echo=quiet)
    assert_gold_equals_oracle(config, oracle)
