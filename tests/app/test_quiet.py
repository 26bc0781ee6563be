"""A quiet command line: no Spark or JVM chatter that needs nothing from the user,
all of it back with -v; errors and Ctrl-C as one line each."""

from __future__ import annotations

import io
import os
import re
import signal
import time
from pathlib import Path

import pytest

from meterlake.app.cli import _config, _parser
from meterlake.app.pipeline import LAYER_QUERIES, STOPPING
from meterlake.app.stopping import Interrupts, stop_between_triggers
from meterlake.core.sparkinternals import forward_jvm_stderr, is_jvm_noise
from meterlake.tools.generate import MonthSpec, write_readings
from meterlake.tools.publish import publish_readings
from tests.reliability_helpers import FAST_STREAMS, cli, live, write_conf

JVM_STDERR = (
    b"WARNING: Using incubator modules: jdk.incubator.vector\n"
    b"14:05:08 ERROR MicroBatchExecution: a real error\n"
    b"\tat org.apache.spark.Something(Something.scala:1)\n"
    b"no newline at the end"
)


def forwarded(quiet: bool) -> bytes:
    read, write = os.pipe()
    forward_jvm_stderr(io.BytesIO(JVM_STDERR), quiet, fd=write)
    os.close(write)
    with os.fdopen(read, "rb") as out:
        return out.read()


def test_quiet_mode_drops_the_incubator_warning_and_passes_everything_else() -> None:
    assert forwarded(quiet=True) == JVM_STDERR.split(b"\n", 1)[1]


def test_verbose_mode_passes_the_jvm_stderr_unchanged() -> None:
    assert forwarded(quiet=False) == JVM_STDERR


@pytest.mark.parametrize(
    ("line", "noise"),
    [
        ("WARNING: Using incubator modules: jdk.incubator.vector\n", True),
        ("WARNING: something else the JVM says\n", False),
        ("Exception in thread \"main\" java.lang.OutOfMemoryError\n", False),
    ],
)
def test_only_the_known_jvm_lines_are_noise(line: str, noise: bool) -> None:
    assert is_jvm_noise(line) is noise


def test_a_closed_stderr_does_not_stop_the_reading() -> None:
    read, write = os.pipe()
    os.close(read)  # nobody reads: writing fails with EPIPE
    pipe = io.BytesIO(JVM_STDERR)
    forward_jvm_stderr(pipe, quiet=True, fd=write)  # no exception
    os.close(write)
    assert pipe.read() == b""  # drained to the end


def test_dash_v_turns_spark_verbose_on() -> None:
    assert _config(_parser().parse_args(["query", "q1"])).spark.verbose is False
    assert _config(_parser().parse_args(["-v", "query", "q1"])).spark.verbose is True
    assert _config(_parser().parse_args(["query", "q1", "-v"])).spark.verbose is True
    on = _config(_parser().parse_args(["--set", "spark.verbose=true", "query", "q1"]))
    assert on.spark.verbose is True


class FakeQuery:
    """A query whose micro-batch is running for `busy` more status checks."""

    def __init__(self, name: str, busy: int, stopped: list[str]) -> None:
        self.name, self.busy, self.stopped = name, busy, stopped
        self.isActive = True

    @property
    def status(self) -> dict:
        self.busy -= 1
        return {"isTriggerActive": self.busy >= 0}

    def stop(self) -> None:
        self.isActive = False
        self.stopped.append(self.name)


def test_each_query_is_stopped_once_its_running_batch_is_done() -> None:
    stopped: list[str] = []
    queries = [FakeQuery("bronze", 3, stopped), FakeQuery("silver", 0, stopped),
               FakeQuery("gold", 1, stopped)]  # fmt: skip
    stop_between_triggers(queries, poll_s=0)
    assert stopped == ["silver", "gold", "bronze"]


def test_a_second_ctrl_c_stops_the_running_batches_at_once() -> None:
    stopped: list[str] = []
    queries = [FakeQuery("bronze", 10**6, stopped), FakeQuery("silver", 10**6, stopped)]
    checks = iter([False, False, True])
    stop_between_triggers(queries, now=lambda: next(checks, True), poll_s=0)
    assert stopped == ["bronze", "silver"]


def test_ctrl_c_is_counted_and_announced_once_instead_of_raising() -> None:
    said: list[str] = []
    previous = signal.getsignal(signal.SIGINT)
    with Interrupts(lambda: said.append("stopping ...")) as ctrl_c:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        ctrl_c.announce()
    assert ctrl_c.count == 2 and said == ["stopping ..."]
    assert signal.getsignal(signal.SIGINT) is previous


# --------------------------------------------------------------------------- end to end

NOISE = ("FairSchedulableBuilder", "incubator modules", "falling behind", "Traceback",
         "Exception", "\tat ")  # fmt: skip
PLAIN_PROGRESS = re.compile(r"^ *(bronze|silver|gold): [\d,]+ of [\d,]+ rows \(\d+%\), ", re.M)


@pytest.fixture
def published(kafka, config, tmp_path: Path) -> tuple[Path, int]:
    """A day of two meters in the config's topic: the subprocesses' meterlake.toml, and
    how many readings were sent."""
    readings = tmp_path / "day.csv"
    write_readings(MonthSpec(meters=2, days=1, cadence_s=900, seed=2), readings)
    lines = readings.read_text().splitlines()
    sent = publish_readings(config, lines, speedup=0, progress=False).sent
    return write_conf(tmp_path / "meterlake.toml", config, FAST_STREAMS), sent


@pytest.mark.slow(minutes=0.6)
def test_run_once_off_a_terminal_prints_plain_progress_and_nothing_on_stderr(
    published: tuple[Path, int], config, tmp_path: Path
) -> None:
    conf, sent = published
    ran = cli(["run", "--once"], conf, {"METERLAKE_PROGRESS_EVERY_S": "1"})
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stderr == ""
    assert {m.group(1) for m in PLAIN_PROGRESS.finditer(ran.stdout)} == {
        "bronze", "silver", "gold"}, ran.stdout  # fmt: skip
    assert "\r" not in ran.stdout and "\x1b" not in ran.stdout  # no bar off a terminal
    assert f"bronze: read {sent:,} rows" in ran.stdout

    # One message more (the day's first reading again), so bronze runs a batch in its
    # scheduler pool, which Spark warns about when it may.
    first = (tmp_path / "day.csv").read_text().splitlines()[0]
    publish_readings(config, [first], speedup=0, progress=False)
    again = cli(["-v", "run", "--once", "--layers", "bronze"], conf)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "WARNING: Using incubator modules" in again.stderr
    assert " WARN " in again.stderr  # Spark's own warnings are back


@pytest.mark.slow(minutes=0.4)
def test_ctrl_c_stops_a_live_run_between_batches_without_traces(
    published: tuple[Path, int], config, tmp_path: Path
) -> None:
    with live(published[0], tmp_path / "run.log") as running:
        running.wait_running()
        deadline = time.monotonic() + 300
        gold = LAYER_QUERIES["gold"][-1]  # the query that writes gold last
        while not (config.checkpoint(gold) / "commits" / "0").exists():
            assert time.monotonic() < deadline, running.output()[-3000:]
            time.sleep(0.5)
        os.killpg(running.process.pid, signal.SIGINT)  # as a terminal's Ctrl-C
        code = running.process.wait(120)
        output = running.output()
    assert code == 0, output[-3000:]
    lines = output.splitlines()
    assert lines[0].startswith("running bronze, silver") and lines[0].endswith("Ctrl-C stops")
    assert [line for line in lines[1:] if not line.startswith("silver: ")] == [STOPPING]
    assert not [word for word in NOISE if word in output], output[-3000:]
