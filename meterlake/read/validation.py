"""What silver accepted and quarantined in a run, said out loud.

Silver's `readings` and `quarantine` tables are append-only, so what a run did is
their content now minus their content at the versions seen before it. Read with
delta-rs and DuckDB, no Spark. A sensor whose readings were mostly rejected gets a
warning naming the setting that decided it (a coursework file that rises by
hundreds of kWh per half hour must not look like an empty answer).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from meterlake.core.config import Config, SemanticsConf
from meterlake.read.clock import zone_of
from meterlake.read.connection import arrow_source
from meterlake.read.travel import open_table

NO_SENSOR = "(no sensor id)"
# Anomalies recorded for an accepted reading: not a rejection.
ANOMALIES = ("counter_decrease",)
# The [semantics] setting behind a rejection, with its unit.
SETTINGS = {
    "implausible_jump": ("max_power_kw", "kW"),
    "too_late": ("allowed_lateness_s", "s"),
    "bad_timestamp": ("max_clock_skew_s", "s"),
}


@dataclass
class Tally:
    """Counts per sensor: accepted readings, and quarantine records by reason."""

    accepted: Counter = field(default_factory=Counter)  # sensor -> n
    quarantined: Counter = field(default_factory=Counter)  # (sensor, reason) -> n


Versions = dict[str, int | None]
TABLES = ("readings", "quarantine")


def versions(config: Config) -> Versions:
    """The current version of each table (None: not created yet)."""
    out: Versions = {}
    for name in TABLES:
        path = str(config.table_path(name))
        out[name] = DeltaTable(path).version() if DeltaTable.is_deltatable(path) else None
    return out


def _counts(config: Config, name: str, version: int, sql: str) -> Counter:
    con = duckdb.connect()
    try:
        con.register("rows", arrow_source(open_table(config, name, version=version)))
        found = con.execute(sql.format(table="rows")).fetchall()
    finally:
        con.close()
    return Counter({(r[0] if len(r) == 2 else tuple(r[:-1])): r[-1] for r in found})


def tally_since(config: Config, before: Versions) -> tuple[Tally, Versions]:
    """What the two tables gained since the versions `before`; and the versions now."""
    now = versions(config)
    accepted_sql = "SELECT coalesce(sensor_id, '') AS s, count(*) FROM {table} GROUP BY s"
    quarantine_sql = (
        f"SELECT coalesce(sensor_id, '{NO_SENSOR}') AS s, reason, count(*) "
        "FROM {table} GROUP BY s, reason"
    )
    tally = Tally()
    for name, sql, into in (
        ("readings", accepted_sql, tally.accepted),
        ("quarantine", quarantine_sql, tally.quarantined),
    ):
        if now[name] is None or now[name] == before.get(name):
            continue
        into.update(_counts(config, name, now[name], sql))
        if before.get(name) is not None:
            into.subtract(_counts(config, name, before[name], sql))
    tally.accepted, tally.quarantined = +tally.accepted, +tally.quarantined
    return tally, now


def _by_reason(tally: Tally) -> Counter:
    reasons: Counter = Counter()
    for (_, reason), n in tally.quarantined.items():
        reasons[reason] += n
    return reasons


def summary_line(tally: Tally) -> str:
    """One line: accepted, quarantined by reason, and by sensor."""
    accepted = sum(tally.accepted.values())
    reasons = _by_reason(tally)
    line = f"silver: {accepted:,} readings accepted"
    if reasons:
        by_reason = ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items()))
        line += f"; {sum(reasons.values()):,} quarantined ({by_reason})"
        sensors: Counter = Counter()
        for (sensor, _), n in tally.quarantined.items():
            sensors[sensor] += n
        worst = ", ".join(f"{s} {n:,}" for s, n in sensors.most_common(5))
        more = f" and {len(sensors) - 5} more" if len(sensors) > 5 else ""
        line += f"; by sensor: {worst}{more}"
    else:
        line += "; nothing quarantined"
    return line


def warnings(tally: Tally, semantics: SemanticsConf) -> list[str]:
    """A line per sensor with most of its readings rejected, naming the setting."""
    out = []
    sensors = set(tally.accepted) | {s for s, _ in tally.quarantined}
    for sensor in sorted(sensors):
        rejected = Counter(
            {r: n for (s, r), n in tally.quarantined.items() if s == sensor and r not in ANOMALIES}
        )
        total = tally.accepted[sensor] + sum(rejected.values())
        if not rejected or sum(rejected.values()) * 2 <= total:
            continue
        reason, n = rejected.most_common(1)[0]
        line = f"warning: {sensor}: {n:,} of {total:,} readings quarantined as {reason}"
        if reason in SETTINGS:
            name, unit = SETTINGS[reason]
            value = getattr(semantics, name)
            line += (
                f" ({name} = {value:g} {unit}); see [semantics] {name}, "
                f"or --set semantics.{name}=VALUE"
            )
        out.append(line)
    return out


def waiting_line(config: Config) -> str | None:
    """A line when bronze's newest messages wait for silver: produced after the release
    horizon of the batch that landed them (bronze.horizon; a producer was still sending
    when bronze caught up), they are judged once every partition is read past them.
    From the Delta statistics of bronze's newest file, no scan."""
    if config.streams.silver_source != "bronze":
        return None
    files = pa.table(open_table(config, "bronze").get_add_actions(flatten=True))
    if "max.kafka_timestamp" not in files.column_names or not files.num_rows:
        return None
    newest = files["max.kafka_timestamp"].to_pylist()
    with_stats = [k for k, at in enumerate(newest) if at is not None]
    if not with_stats:
        return None
    at = max(with_stats, key=lambda k: newest[k])
    horizon = files["max.released_before"][at].as_py()
    if horizon is None or newest[at] < horizon:
        return None
    shown = horizon.astimezone(zone_of(config)).strftime("%Y-%m-%d %H:%M:%S")
    return (f"silver: messages produced from {shown} on wait until every partition is read "
            "past them (a producer was still sending); the next run judges them")


def report(config: Config, before: Versions, echo) -> Versions:
    """Echo the summary and warnings of what silver did since `before`, and what waits;
    the versions now."""
    tally, now = tally_since(config, before)
    echo(summary_line(tally))
    for line in warnings(tally, config.semantics):
        echo(line)
    if (waiting := waiting_line(config)) is not None:
        echo(waiting)
    return now
