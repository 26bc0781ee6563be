"""The quarantine's reason codes: one home for each silver rule.

Each code with what it means, the `[semantics]` setting that tunes it (if any), what
becomes of the message, and the function that decides it. The rules are checked in
this order (rules 1-11 of docs/semantics.md, the spec's table); the first that fails
names the reason. Rules 1-5 judge one message (silver.message); rules 6-11 a reading
against its meter's state (silver.meter). The columnar path (silver.runs `follows`,
silver.bucket) accepts only readings none of rules 6-11 flags, and sends every
other reading to silver.meter. The oracle (oracle/sql.py) writes the codes in its
own SQL; tests/silver/test_reasons.py holds its codes to these.
"""

from __future__ import annotations

from dataclasses import dataclass

QUARANTINED = "quarantined"
COUNTED = "dropped; in the quarantine so it is counted"
ANOMALY = "accepted; in the quarantine as an anomaly"


@dataclass(frozen=True)
class Reason:
    code: str
    meaning: str
    outcome: str
    decided_in: str  # module.function
    settings: tuple[str, ...] = ()  # the [semantics] keys of conf/meterlake.toml


MALFORMED_JSON = Reason(
    "malformed_json", "not UTF-8, not JSON, not a JSON object, or a field named twice",
    QUARANTINED, "silver.message.parse_message")
MISSING_FIELD = Reason(
    "missing_field", "timestamp, sensor_id or energy absent or null",
    QUARANTINED, "silver.message.parse_message")
BAD_SENSOR_ID = Reason(
    "bad_sensor_id", "sensor_id not a string, blank, too long or with control characters",
    QUARANTINED, "silver.message.parse_message")
BAD_TIMESTAMP = Reason(
    "bad_timestamp", "not a string, unparseable, too early, or ahead of the wall clock",
    QUARANTINED, "silver.message.parse_message", ("min_timestamp", "max_clock_skew_s"))
BAD_ENERGY = Reason(
    "bad_energy", "not a JSON number, NaN, infinite or negative",
    QUARANTINED, "silver.message.parse_message")
TOO_LATE = Reason(
    "too_late", "older than the allowed lateness behind the meter's latest reading",
    QUARANTINED, "silver.meter.judge", ("allowed_lateness_s",))
AMBIGUOUS_TIME = Reason(
    "ambiguous_time", "a naive time of October's repeated hour the register cannot place",
    QUARANTINED, "silver.meter.judge")
DUPLICATE = Reason(
    "duplicate", "the meter's reading at that instant, with the same energy, again",
    COUNTED, "silver.meter.judge")
CONFLICTING_DUPLICATE = Reason(
    "conflicting_duplicate", "a reading at an instant the meter has, with another energy",
    QUARANTINED, "silver.meter.judge")
IMPLAUSIBLE_JUMP = Reason(
    "implausible_jump", "a rise faster than the maximum power, since or until a neighbour",
    QUARANTINED, "silver.meter.plausible", ("max_power_kw",))
COUNTER_DECREASE = Reason(
    "counter_decrease", "the register fell (a reset): the interval counts 0 kWh",
    ANOMALY, "silver.meter.judge")

REASONS = (
    MALFORMED_JSON, MISSING_FIELD, BAD_SENSOR_ID, BAD_TIMESTAMP, BAD_ENERGY,
    TOO_LATE, AMBIGUOUS_TIME, DUPLICATE, CONFLICTING_DUPLICATE, IMPLAUSIBLE_JUMP,
    COUNTER_DECREASE,
)
