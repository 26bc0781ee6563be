"""The run summary and the warnings of meterlake.read.validation (pure Python)."""

from __future__ import annotations

from collections import Counter

from meterlake.core.config import SemanticsConf
from meterlake.read.validation import Tally, summary_line, waiting_line, warnings
from tests.lake_helpers import utc, write


def tally(accepted: dict, quarantined: dict) -> Tally:
    return Tally(Counter(accepted), Counter(quarantined))


def test_the_summary_counts_by_reason_and_by_sensor() -> None:
    t = tally({"A": 5, "B": 290}, {("A", "implausible_jump"): 287, ("B", "duplicate"): 2,
                                   ("(no sensor id)", "malformed_json"): 1})  # fmt: skip
    assert summary_line(t) == (
        "silver: 295 readings accepted; 290 quarantined (duplicate 2, implausible_jump 287, "
        "malformed_json 1); by sensor: A 287, B 2, (no sensor id) 1"
    )
    assert summary_line(tally({"A": 3}, {})) == "silver: 3 readings accepted; nothing quarantined"


def test_a_sensor_mostly_rejected_names_the_setting_that_decided_it() -> None:
    t = tally({"A": 5, "B": 290}, {("A", "implausible_jump"): 287, ("B", "implausible_jump"): 3})
    assert warnings(t, SemanticsConf()) == [
        "warning: A: 287 of 292 readings quarantined as implausible_jump (max_power_kw = 50 kW);"
        " see [semantics] max_power_kw, or --set semantics.max_power_kw=VALUE"
    ]


def test_anomalies_of_accepted_readings_are_not_rejections() -> None:
    t = tally({"A": 4}, {("A", "counter_decrease"): 4})
    assert warnings(t, SemanticsConf()) == []


def test_a_rejection_without_a_setting_still_warns() -> None:
    t = tally({}, {("C", "bad_energy"): 3})
    assert warnings(t, SemanticsConf()) == ["warning: C: 3 of 3 readings quarantined as bad_energy"]


def _bronze_batch(config, produced: list[str], horizon: str) -> None:
    """A bronze commit of messages produced at `produced`, its horizon on its first row."""
    write(config, "bronze", [
        {"topic": "t", "partition": 0, "offset": n, "kafka_timestamp": utc(at),
         "ingested_at": utc(at), "released_before": utc(horizon) if n == 0 else None}
        for n, at in enumerate(produced)])


def test_messages_produced_after_the_horizon_are_said_to_wait(config) -> None:
    _bronze_batch(config, ["2024-02-10 12:00", "2024-02-10 12:05"], "2024-02-10 12:03")
    assert waiting_line(config) == (
        "silver: messages produced from 2024-02-10 12:03:00 on wait until every partition is "
        "read past them (a producer was still sending); the next run judges them")
    _bronze_batch(config, ["2024-02-10 12:06"], "9999-12-31 23:59:59")  # all read: none wait
    assert waiting_line(config) is None
