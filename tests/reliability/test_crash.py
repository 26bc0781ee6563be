"""Crashes (issue 7, items 1 and 2): kill -9 of the pipeline's driver, and of the broker.

The driver: `meterlake run` (live, short triggers) runs as a subprocess while a
month is published at a high speedup; the test kills its whole process group
(Python driver, JVM, Python workers) with SIGKILL again and again and starts
it again each time. Some kills are aimed: the test polls the Delta logs and
kills the moment a gold table holds a commit whose batch id (txnVersion) has no
file yet in the gold query's `<checkpoint>/commits/` (inside foreachBatch, after a
table's commit, before Spark's commit log), or the moment silver has written its
readings or its pieces for a batch. Others fall at random moments, after the
queries run or while they start. Where each kill landed is read afterwards
from the files the dead process left (`unfinished_batches`), not from what the
test aimed at. At the end, after a last catch-up: gold equals the oracle,
bronze holds each Kafka offset once, silver holds no piece twice, and no table
took the same batch twice.

The broker: a broker of its own (not the session's), killed -9 three times
while the publisher sends and the pipeline reads, restarted each time on the
same data directory. The publisher (idempotent, acks=all) rides it out and
every reading it sent is acknowledged; the pipeline is never restarted: it
waits and goes on by itself. Every acknowledged reading reaches bronze once.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from meterlake.core.catalog import LAYER_TABLES, QUERY_TABLES
from meterlake.core.net import free_port
from meterlake.infra import broker as kafka_broker
from meterlake.tools.generate import MonthSpec, write_readings
from meterlake.tools.publish import PublishResult, publish_readings
from oracle import compute_answers
from tests.helpers import end_offsets
from tests.reliability_helpers import (
    FAST_STREAMS,
    DeltaWatch,
    Live,
    assert_bronze_is_one_row_per_offset,
    assert_gold_equals_oracle,
    assert_no_duplicate_piece,
    batch_committed,
    commit_file,
    frame,
    kill_broker,
    live,
    txn_versions,
    unfinished_batches,
    write_conf,
)

DRIVER_SPEC = MonthSpec(meters=3, days=3, cadence_s=300, seed=17)  # 2,586 readings
# What each kill aims at, in order: a gold commit that added rows but has no
# commit-log file yet, silver between its table writes (after `readings`, after the
# pieces), a random moment once the queries run, a random moment while it starts.
PLAN = (
    "gold", "silver:readings", "random", "gold", "startup",
    "gold", "silver:silver", "random", "gold", "startup",
)
# The month in len(PLAN) slices: each published at DRIVER_SPEEDUP (7.2 h of
# readings in about 20 s) from the moment the driver is (re)started, so every run
# has data to take in, however slowly the machine restarts it.
DRIVER_SPEEDUP = 1_300
# Silver's table writes are delta-rs commits milliseconds apart: a pause after each
# (meterlake.core.failpoints) gives a kill aimed between them the time to land.
FAILPOINTS = {"METERLAKE_PAUSE_BETWEEN_SILVER_WRITES": "0.5"}
WINDOW_WAIT_S = 300  # an aimed kill that finds no window by then kills anyway (load)
# ... or once its slice is published and no table has taken a commit for this long
# (gold's trigger is 3 s): nothing more is coming, so no window will open.
QUIET_S = 20
BROKER_SPEC = MonthSpec(meters=2, days=3, cadence_s=300, seed=23)  # 1,703 readings
BROKER_SPEEDUP = 3_600  # three days in 72 s
# The broker is killed when the publisher has taken in these fractions of the month
# (and not before it has been back for BROKER_UP_S), down for 3-8 s plus its restart.
BROKER_KILLS_AT = (0.15, 0.4, 0.65)
BROKER_UP_S = 8
QUERY_OF = {table: query for query, tables in QUERY_TABLES.items() for table in tables}


class Counted:
    """An iterable of lines that counts how many its reader has taken."""

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.taken = lines, 0

    def __iter__(self):
        for line in self.lines:
            self.taken += 1
            yield line

    @property
    def fraction(self) -> float:
        return self.taken / len(self.lines)


@dataclass
class Publisher:
    """publish_readings in a thread; its result or its error."""

    config: object
    lines: Counted
    speedup: float
    result: PublishResult | None = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = publish_readings(self.config, self.lines, self.speedup, progress=False)
        except BaseException as exc:  # reported by wait()
            self.error = exc

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def wait(self, timeout: float = 900) -> PublishResult:
        self.thread.join(timeout)
        assert self.done, f"publisher still running after {timeout} s"
        assert self.error is None, f"publisher failed: {self.error}"
        return self.result


def _create_topic(config) -> None:
    """The topic, before `meterlake run` starts: bronze started on a missing topic failed
    with UnknownTopicOrPartitionException when the publisher created it."""
    publish_readings(config, [], speedup=0, progress=False)


def _assert(condition: bool) -> None:
    assert condition


def _until(condition, timeout: float, what: str, run: Live | None = None, every: float = 2):
    """Poll condition() (an AssertionError means not yet) until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        if run is not None and run.process.poll() is not None:
            raise AssertionError(f"meterlake run exited:\n{run.output()[-3000:]}")
        try:
            return condition()
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not after {timeout} s") from None
        time.sleep(every)


# --------------------------------------------------------------------------- the driver


def _window(config, aim: str, table: str, batch: int | None, adds: int) -> bool:
    """Is this new commit the window the kill aims at (a batch's rows written to Delta,
    not yet in the checkpoint's commit log)?"""
    if batch is None or not adds or batch_committed(config, QUERY_OF[table], batch):
        return False
    if aim == "gold":
        return table in LAYER_TABLES["gold"]
    return aim == f"silver:{table}"


def _kill_in_window(run: Live, watch: DeltaWatch, config, aim: str, publisher) -> str:
    started = last_commit = time.monotonic()
    while (now := time.monotonic()) < started + WINDOW_WAIT_S:
        if run.process.poll() is not None:
            raise AssertionError(f"meterlake run exited by itself:\n{run.output()[-3000:]}")
        for table, version, batch, adds in watch.poll():
            last_commit = now
            if _window(config, aim, table, batch, adds):
                run.kill()
                return f"{table} v{version} (batch {batch}, {adds} files)"
        if publisher.done and now - last_commit > QUIET_S:
            run.kill()
            return f"no window before the stream went quiet ({QUIET_S} s): killed anyway"
        time.sleep(0.005)
    run.kill()
    return "no window in time: killed anyway"


def _landed(unfinished: dict, before: dict) -> list[str]:
    """The windows a kill landed in, from what the dead pipeline left behind (a batch
    left unfinished by an earlier kill and not retried since does not count again)."""
    new = {query: left for query, left in unfinished.items() if before.get(query) != left}
    kinds = []
    if "gold" in new:
        kinds.append("gold: a table committed, commit log not")
    if "silver" in new:
        _, written = new["silver"]  # readings, then pieces, then quarantine (if any)
        kinds.append(
            "silver: pieces written, commit log not"
            if "silver" in written
            else "silver: between its table writes"
        )
    if "bronze" in new:
        kinds.append("bronze: Delta committed, commit log not")
    return kinds or ["elsewhere"]


def _kill_once(conf: Path, log: Path, config, watch: DeltaWatch, aim: str, part, rng) -> dict:
    """Start `meterlake run` and publish a slice of the month, kill it as aimed."""
    watch.poll()  # commits of earlier runs are not this run's windows
    started = time.monotonic()
    with live(conf, log, env=FAILPOINTS) as run:
        publisher = Publisher(config, Counted(part), DRIVER_SPEEDUP)
        if aim == "startup":
            time.sleep(rng.uniform(2, 10))
            what = "after start" if "Ctrl-C stops" in run.output() else "while starting"
        else:
            run.wait_running()
        if aim == "random":
            time.sleep(rng.uniform(0, 8))
            what = "at random"
        if aim in ("startup", "random"):
            assert run.process.poll() is None, f"exited by itself:\n{run.output()[-3000:]}"
            run.kill()
        else:
            what = _kill_in_window(run, watch, config, aim, publisher)
        publishing = not publisher.done
    return {"aim": aim, "what": what, "after_s": round(time.monotonic() - started, 1),
            "publishing": publishing, "publisher": publisher}


def _commit(table: Path, version: int, batch: int | None, adds: int = 1) -> None:
    """A commit as the pipeline writes it: its batch recorded as Delta's transaction."""
    actions: list[dict] = [{"commitInfo": {"operation": "WRITE"}}]
    if batch is not None:
        actions.append({"txn": {"appId": "q", "version": batch}})
    actions += [{"add": {"path": f"part-{version}-{i}.parquet"}} for i in range(adds)]
    (table / "_delta_log").mkdir(parents=True, exist_ok=True)
    commit_file(table, version).write_text("\n".join(json.dumps(a) for a in actions))


def test_where_a_kill_landed_is_read_from_the_delta_logs_and_the_commit_logs(config):
    """No Spark: fabricated Delta logs and commit logs, as a killed pipeline leaves them."""
    for table in QUERY_OF:
        _commit(config.table_path(table), 0, None, adds=0)  # created, no batch yet
    watch = DeltaWatch(config, list(QUERY_OF))
    assert unfinished_batches(config) == {}
    _commit(config.table_path("readings"), 1, 0)  # silver wrote 1 of its 3 tables
    _commit(config.table_path("day_cost"), 1, 0, adds=0)  # a commit that added no file
    assert watch.poll() == [("readings", 1, 0, 1), ("day_cost", 1, 0, 0)]
    assert not _window(config, "gold", "day_cost", 0, 0)  # no rows: not aimed at
    assert _window(config, "silver:readings", "readings", 0, 1)
    unfinished = unfinished_batches(config)
    assert unfinished == {"silver": (0, ("readings",)), "gold": (0, ("day_cost",))}
    assert _landed(unfinished, {}) == [
        "gold: a table committed, commit log not", "silver: between its table writes"]
    assert _landed(unfinished, unfinished) == ["elsewhere"]  # left over, not retried
    _commit(config.table_path("silver"), 1, 0)  # nothing quarantined: no commit there
    commits = config.checkpoint("gold") / "commits"
    commits.mkdir(parents=True)
    (commits / "0").write_text("v1")
    assert not _window(config, "gold", "day_cost", 0, 1)  # its batch is in the commit log
    assert _landed(unfinished_batches(config), unfinished) == [
        "silver: pieces written, commit log not"]


@pytest.mark.slow(minutes=4.7)
def test_kill_9_of_the_driver_at_any_moment_changes_no_answer(kafka, config, tmp_path):
    readings = tmp_path / "readings.csv"
    write_readings(DRIVER_SPEC, readings)
    lines = readings.read_text().splitlines()
    oracle = compute_answers(readings, config.semantics)
    conf = write_conf(tmp_path / "live.toml", config, FAST_STREAMS)
    watch = DeltaWatch(config, list(QUERY_OF))
    rng = random.Random(7)
    began = time.monotonic()
    _create_topic(config)

    slices = [lines[len(lines) * k // len(PLAN) : len(lines) * (k + 1) // len(PLAN)]
              for k in range(len(PLAN))]
    kills, results, unfinished = [], [], {}
    for number, (aim, part) in enumerate(zip(PLAN, slices, strict=True)):
        kill = _kill_once(conf, tmp_path / f"run-{number}.log", config, watch, aim, part, rng)
        publisher = kill.pop("publisher")
        kill["unfinished"], before = unfinished_batches(config), unfinished
        kill["landed"], unfinished = _landed(kill["unfinished"], before), kill["unfinished"]
        kills.append(kill)
        print(f"kill {number + 1}: {kill}")
        results.append(publisher.wait())  # one slice after another: each meter in order
    published = PublishResult(
        sent=sum(r.sent for r in results), skipped=0, seconds=0,
        acked=sum(r.acked for r in results),
    )

    with live(conf, tmp_path / "final.log") as run:  # the last restart catches up
        run.wait_running()
        ends = end_offsets(kafka, config.kafka.topic)
        _until(lambda: assert_gold_equals_oracle(config, oracle), 600, "gold = oracle", run)
        assert run.interrupt() == 0, run.output()[-3000:]

    offsets = sum(ends.values())
    assert offsets == published.sent == published.acked == len(lines)
    assert assert_bronze_is_one_row_per_offset(config, ends) == offsets
    pieces = assert_no_duplicate_piece(config)
    assert_gold_equals_oracle(config, oracle)
    for table in QUERY_OF:  # a replayed batch was skipped, never written twice
        batches = txn_versions(config.table_path(table))
        assert len(batches) == len(set(batches)), f"{table}: a batch committed twice"

    landed = Counter(kind for kill in kills for kind in kill["landed"])
    print(f"{len(kills)} kills in {time.monotonic() - began:.0f} s; {offsets:,} offsets = "
          f"bronze rows; {pieces:,} pieces, none twice; landed: {dict(landed)}")
    assert len(kills) >= 10
    assert landed["gold: a table committed, commit log not"] >= 3, kills
    assert landed["silver: between its table writes"] >= 1, kills


# --------------------------------------------------------------------------- the broker


@pytest.mark.slow(minutes=1.8)
@pytest.mark.spark  # a live run in a subprocess, on its own broker
@pytest.mark.kafka
def test_kill_9_of_the_broker_loses_and_doubles_nothing(base_config, config, tmp_path):
    broker = replace(
        base_config.broker, home=tmp_path / "kafka", port=free_port(),
        controller_port=free_port(),
    )
    config = replace(config, kafka=replace(config.kafka, bootstrap=f"{broker.host}:{broker.port}"))
    readings = tmp_path / "readings.csv"
    write_readings(BROKER_SPEC, readings)
    lines = readings.read_text().splitlines()
    oracle = compute_answers(readings, config.semantics)
    conf = write_conf(tmp_path / "live.toml", config, FAST_STREAMS)
    began = time.monotonic()
    kafka_broker.start(broker)
    try:
        _create_topic(config)
        with live(conf, tmp_path / "live.log") as run:
            run.wait_running()
            sending = Counted(lines)
            publisher = Publisher(config, sending, BROKER_SPEEDUP)
            kills, back, rng = [], time.monotonic(), random.Random(3)
            for at in BROKER_KILLS_AT:
                _until(lambda at=at: _assert(sending.fraction >= at or publisher.done), 900,
                       "publisher progress", run, every=0.2)
                time.sleep(max(0.0, back + BROKER_UP_S - time.monotonic()))
                kill = {"taken": round(sending.fraction, 2), "publishing": not publisher.done}
                down = time.monotonic()
                kill_broker(broker)
                time.sleep(rng.uniform(3, 8))
                kafka_broker.start(broker)  # same data directory
                back = time.monotonic()
                kills.append({**kill, "down_s": round(back - down, 1)})
                assert run.process.poll() is None, run.output()[-3000:]
            published = publisher.wait()
            ends = end_offsets(config.kafka.bootstrap, config.kafka.topic)
            _until(lambda: assert_gold_equals_oracle(config, oracle), 600, "gold = oracle", run)
            assert run.interrupt() == 0, run.output()[-3000:]  # never restarted
    finally:
        kafka_broker.stop(broker)

    offsets = sum(ends.values())
    bronze = assert_bronze_is_one_row_per_offset(config, ends)
    quarantine = frame(config, "SELECT reason, count(*) AS n FROM quarantine GROUP BY ALL",
                       ["quarantine"])
    quarantined = dict(zip(quarantine["reason"], quarantine["n"], strict=True))
    print(f"broker kills {kills}; {published.sent:,} sent, {published.acked:,} "
          f"acked, {offsets:,} offsets, {bronze:,} bronze rows, quarantined {quarantined}; "
          f"{time.monotonic() - began:.0f} s")
    assert published.sent == published.acked == offsets == bronze == len(lines)
    assert len(kills) == 3
    assert sum(kill["publishing"] for kill in kills) >= 2, kills  # the others while consuming
    assert quarantined == oracle.quarantine_counts  # no reading came twice (no duplicate)
    assert_no_duplicate_piece(config)
    assert_gold_equals_oracle(config, oracle)
