"""A quiet command line: no Spark or JVM chatter that needs nothing from the user,
all of it back with -v; errors and Ctrl-C as one line each."""

from __future__ import annotations

import io
import os

import pytest

from meterlake.cli import _config, _parser
from meterlake.session import forward_jvm_stderr, is_jvm_noise

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
