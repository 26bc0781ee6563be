"""A quiet command line: no Spark or JVM chatter that needs nothing from the user,
all of it back with -v; errors and Ctrl-C as one line each."""

from __future__ import annotations

import io
import os
import signal

import pytest

from meterlake.cli import _config, _parser
from meterlake.session import forward_jvm_stderr, is_jvm_noise
from meterlake.stopping import Interrupts, stop_between_triggers

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
