"""The lake on the local S3 store (SeaweedFS, issue 26): what an object store adds.

- The store itself: started once (a second start finds it), on loopback only, with
  the bucket, honouring conditional puts (what delta-rs' safe commits rest on), its
  data kept across a restart.
- kill -9 of the driver with the lake (checkpoints, state, tables) on the store, then
  the store going away: the session's store is stopped under a live `meterlake run`
  (and started again, on the same data, for the tests after), whose queries keep
  reading and writing the lake there. The run ends with one line naming the store, not
  a traceback; once the store is back, a catch-up finishes the job from the
  checkpoints on the store: every offset in bronze once, no piece twice, gold equal
  to the oracle over everything published. (One test: the two share the slow part,
  live runs and the last catch-up.)

The equivalence case runs on the store too (tests/e2e/test_equivalence.py,
parametrized by `lake_at`).
"""

from __future__ import annotations

import random
import time
import urllib.error
import urllib.request
from dataclasses import replace

import pytest
from deltalake import DeltaTable

from meterlake.app.pipeline import run_once
from meterlake.core.location import ObjectPath
from meterlake.core.net import free_port
from meterlake.infra import objectstore
from meterlake.tools.generate import MonthSpec, write_readings
from meterlake.tools.publish import publish_readings
from oracle import compute_answers
from tests.helpers import end_offsets, quiet
from tests.reliability.test_crash import Counted, Publisher
from tests.reliability_helpers import (
    FAST_STREAMS,
    assert_bronze_is_one_row_per_offset,
    assert_gold_equals_oracle,
    assert_no_duplicate_piece,
    is_loopback,
    listening,
    live,
    write_conf,
)

KILL_SPEC = MonthSpec(meters=2, days=2, cadence_s=300, seed=27)
KILLS = 3  # kill -9 of the driver at a random moment of its run, each with data flowing
KILL_SPEEDUP = 5_000  # a quarter of the two days (12 h) in about 9 s; the last quarter
# is published at once before the store is stopped under a live run
ALL = ["bronze", "silver", "gold"]


def _http(url: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.store  # its own store
def test_the_store_starts_once_on_loopback_with_the_bucket_and_keeps_its_data(
    base_config, tmp_path
) -> None:
    conf = replace(base_config.s3, home=tmp_path / "s3", port=free_port())
    url = f"{objectstore.endpoint(conf)}/{conf.bucket}/probe/00000000000000000000.json"
    first = objectstore.start(conf)
    try:
        again = objectstore.start(conf)
        assert first.pid == again.pid and again.answering
        assert objectstore.status(conf).describe().startswith("s3 store running (pid ")
        addresses = listening(first.pid)
        assert f"127.0.0.1:{conf.port}" in addresses
        assert len(addresses) >= 8 and all(is_loopback(a) for a in addresses), addresses
        assert _http(url, "PUT", b"first")[0] == 200
        taken = _http(url, "PUT", b"second", {"If-None-Match": "*"})
        assert taken[0] == 412, taken  # a second commit of version 0 is refused
    finally:
        assert objectstore.stop(conf)
    assert not objectstore.status(conf).answering and objectstore.stop(conf) is False
    objectstore.start(conf)  # the same data folder and ports
    try:
        assert _http(url) == (200, b"first")
    finally:
        objectstore.stop(conf)


def _gold_version(table: str) -> int:
    try:
        return DeltaTable(table).version()
    except Exception:  # not there yet
        return -1


def _stop_the_store_mid_run(conf, config, s3_store, log) -> tuple[int, str]:
    """A live run until gold takes a commit, then the store stopped under it (and
    started again, on the same data, for what comes after): its exit code and output."""
    day_cost = str(config.table_path("day_cost"))
    before = _gold_version(day_cost)
    try:
        with live(conf, log) as run:
            run.wait_running()
            deadline = time.monotonic() + 180
            while _gold_version(day_cost) <= before:
                assert run.process.poll() is None, run.output()[-3000:]
                assert time.monotonic() < deadline, run.output()[-3000:]
                time.sleep(0.5)
            objectstore.stop(s3_store)  # mid-run: the streams poll the lake every second
            return run.process.wait(timeout=240), run.output()
    finally:
        objectstore.start(s3_store)


@pytest.mark.slow(minutes=2.5)
def test_kill_9_of_the_driver_and_the_store_stopped_lose_and_double_nothing(
    spark, kafka, s3_store, config, tmp_path
) -> None:
    """The driver killed -9 at random moments while a month's slices are published, its
    checkpoints, state and tables on the store (s3a's non-atomic renames, delta-rs'
    conditional puts); then the store stopped under a live run, which ends with one
    line naming the store, not a traceback. After a last catch-up from the checkpoints
    on the store, every offset is in bronze once, no piece is there twice, and gold
    equals the oracle. (tests/reliability/test_crash.py aims its kills at commit
    windows it reads from local files; here they fall at random.)"""
    config = replace(config, lake=ObjectPath(s3_store.bucket, f"tests/{tmp_path.name}/kill"))
    readings = tmp_path / "readings.csv"
    write_readings(KILL_SPEC, readings)
    lines = readings.read_text().splitlines()
    conf = write_conf(tmp_path / "meterlake.toml", config, FAST_STREAMS,
                      storage={"endpoint": config.storage.endpoint})
    publish_readings(config, [], speedup=0, progress=False)  # the topic, before bronze
    rng = random.Random(26)
    slices = [lines[len(lines) * k // (KILLS + 1) : len(lines) * (k + 1) // (KILLS + 1)]
              for k in range(KILLS + 1)]
    for number, part in enumerate(slices[:KILLS]):
        with live(conf, tmp_path / f"run-{number}.log") as run:
            publisher = Publisher(config, Counted(part), KILL_SPEEDUP)
            run.wait_running()
            time.sleep(rng.uniform(1, 8))
            assert run.process.poll() is None, run.output()[-3000:]
            run.kill()
        publisher.wait()  # one slice after another: each meter in order

    publish_readings(config, slices[KILLS], speedup=0, progress=False)
    code, output = _stop_the_store_mid_run(conf, config, s3_store, tmp_path / "stopped.log")
    assert code == 1, output[-3000:]
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("meterlake: error:")]
    assert len(errors) == 1, output[-3000:]
    assert f"the object store at {config.storage.endpoint} does not answer" in errors[0]

    run_once(spark, config, ALL, echo=quiet)  # the last catch-up
    ends = end_offsets(kafka, config.kafka.topic)
    assert assert_bronze_is_one_row_per_offset(config, ends) == sum(ends.values()) == len(lines)
    assert assert_no_duplicate_piece(config) > 0
    assert_gold_equals_oracle(config, compute_answers(readings, config.semantics))
