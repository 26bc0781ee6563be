"""The oracle: a batch reference implementation of the semantics, in DuckDB SQL.

This module is the *reference* the streaming pipeline is checked against. From
a readings file in the publisher's format it computes, in one batch, what
bronze -> silver -> gold must end up holding: the judgement of every line
(accepted, or its quarantine code), the silver pieces, the four gold tables
and the four sorted views. It follows the shared contract
(``/work/shared/spec/semantics.md``) and the project's decisions where the
contract is silent (``docs/semantics.md``).

Independence: it shares no code with the Spark pipeline. It reads only the
semantics settings (a ``meterlake.core.config.SemanticsConf``) and the tariff file
(``conf/tariff.toml``, parsed here with ``tomllib``). Every rule is one of the
DuckDB SQL statements below; Python only runs them in order, builds the
tariff lookup table from the TOML, and hands back pandas frames.

    result = compute_answers("month.txt")          # conf/meterlake.toml [semantics]
    result.q1, result.day_cost, result.quarantine_counts, ...

Input
-----
One reading per line, ``timestamp;sensor_id;energy``. LINE ORDER IS ARRIVAL
ORDER: a reading is judged against the readings of the same sensor on earlier
lines (what the pipeline sees, the publisher keying messages by sensor), or,
given ``batches``, against those of earlier batches and of its own batch that
are earlier in time (rule 2). The
file must be UTF-8 (else ``ValueError``). A trailing ``\\r`` is dropped; blank
lines, and a ``timestamp;sensor_id;energy`` header as the first non-blank
line, are skipped (as the publisher does). A line is cut at every ``;``:
missing fields are ``missing_field``, a fourth field makes the energy
``a;b`` (not a number).

How each rule is expressed
--------------------------
1. Per line (table ``lines``), in the documented order, the first failing rule
   names the reason: ``missing_field`` (a field absent or empty),
   ``bad_sensor_id`` (blank, over 64 characters, a control character
   U+0000-U+001F or U+007F-U+009F), ``bad_timestamp`` (unparseable, before
   ``min_timestamp``, or more than ``max_clock_skew_s`` ahead of ``now``: that
   last rule only when a ``now`` argument is given), ``bad_energy`` (not a
   decimal number, NaN, infinite, negative). A ``CASE`` over regular
   expressions and ``TRY_CAST``.

   Timestamps: ``YYYY-MM-DD[T ]HH:MM:SS[.fraction][offset]``, the offset being
   ``Z``, ``+HH``, ``+HHMM`` or ``+HH:MM`` (either sign); fractions beyond
   microseconds are truncated. A naive timestamp is wall-clock time in the
   zone (Europe/Lisbon), read with the offset in force *before* a transition:
   the first occurrence (summer, +01:00) of the repeated October hour, and
   +00:00 in the skipped March hour (01:30 -> 01:30 UTC). DuckDB's
   ``timezone()`` reads the repeated hour as its *second* occurrence, so the
   rule is spelled out (macro ``local_offset_us``): per distinct local hour the
   zone's offsets a day before and a day after; where they differ,
   ``local - o_prev`` when that instant does show ``local`` on the wall
   clock, else ``local - o_next`` when that one does, else (a skipped time)
   ``local - o_prev``. This assumes the zone's transitions are more than a day
   apart. Instants are then BIGINT microseconds since the epoch (UTC).
   A naive time of the repeated hour then moves to its second occurrence when
   the register says so (docs/semantics.md: some valid reading of the sensor
   shows a lower register at or after its first occurrence, within the two
   passes; the lowest such register starts the second pass, per sensor and
   UTC day); one left at its first occurrence that lands on an accepted
   reading's instant is ``ambiguous_time`` instead of a duplicate.

2. Per sensor, in judging order, against the sensor's state. Judging order is
   arrival (line) order, or, when the caller names the micro-batches
   (``batches``), timestamp order within each batch, ties in line order (what
   the stream does: a batch is a set). ``too_late``
   (more than ``allowed_lateness_s`` before the latest accepted reading;
   exactly that much is accepted), ``duplicate`` / ``conflicting_duplicate``
   (an accepted reading with the same instant and the same / another energy),
   ``implausible_jump`` (``e - pred.e > max_power_kw * hours`` against the
   accepted predecessor in time, and for a late reading the same against its
   accepted successor) and the ``counter_decrease`` anomaly
   (accepted; ``e < pred.e``; also recorded for the successor in time when a
   late reading is accepted before a lower one). Rejected readings never
   enter the state. A sequential state machine, computed in two parts:

   * The fast path, window functions. With ``LAG`` over judging order, a
     reading is *good* when it is later than the previous valid reading of its
     sensor and does not jump against it; otherwise it is *bad* (late,
     repeated, jumping). While the previous reading is the latest accepted one
     (the state is *clean*), a good reading is accepted against it (with
     ``counter_decrease`` when lower) and becomes the latest one in turn. In
     in-order data every reading is decided this way and there is no walk.
   * The walk, a ``WITH RECURSIVE`` CTE (``_SQL_WALK``) running the rules on
     the bad readings and on those after them until the state is clean again;
     when clean it jumps to the next bad reading. Its state is the sorted list
     of accepted readings within ``allowed_lateness_s`` of the latest one plus
     the one before them: all that rules 6-11 can look at. The good readings
     a jump skips are merged in from a precomputed list (``skipped``: the tail
     of the run of good readings before each bad one, found by an equi-join on
     time buckets). The walk advances all *segments* at once, one reading per
     segment and iteration: a segment starts at a sensor's first bad reading
     and at every bad reading whose run of good readings before it is longer
     than the lateness and than ``WALK_AFTER_BAD`` readings (the state there
     is then just that run's tail, known in advance). The glue checks each
     segment's end: a segment still busy at the next start's skipped readings
     is merged with it, one that ran out of the readings it was given (the
     bad ones and the ``WALK_AFTER_BAD`` after each) gets all of them up to
     its end; the walk is then run again.
     Readings after a late one keep their judgement (not re-validated).

   Cost: the window functions are linear; the walk costs a few milliseconds
   per iteration, and iterations = the longest segment (a few tens for data
   with one percent of anomalies). A file where most readings are out of
   order is one long segment per sensor: correct, but minutes, not seconds.

3. Consumption: consecutive accepted readings in time (``LAG`` over the
   instant) are intervals with ``delta = max(e1 - e0, 0)``, cut at every half
   hour (``range()`` of period starts, unnested); a piece covering ``[a, b)``
   gets ``delta * (b - a) / (t1 - t0)`` (an interval inside one period gets
   ``delta``). Half hours are taken in UTC, which is the same thing because
   the zone's offsets are whole half hours (checked: an error otherwise).

4. Tariff: per distinct period, its local start (``timezone()``), ``day``
   (local date), ``month``, half-hour slot of the day, and whether summer time
   is in force (the offset is above the smaller of the zone's offsets on
   1 January and 1 July of that year), joined to the table built from the
   TOML: for every plan, its prices effective on the local date, its cycle's
   winter or summer schedule (a weekly cycle: the weekday, Saturday or Sunday one,
   from ``isodow``), slot -> band and price. A piece takes its sensor's contracted
   plan (``[contracts]``: the meter's override, else the default);
   ``cost_eur = kwh * price`` (energy term only). ``month_plan_cost`` prices every
   piece under every plan, summed per sensor, month and plan; the view ``plans``
   takes the current month, with ``contracted`` and ``saving_eur``.

5. Gold and the views, as docs/semantics.md "The clock and the views" says:
   one row per (sensor, month), (sensor, day), (sensor, period), every one
   ever seen, ``as_of`` = the latest closing reading of the intervals summed;
   "now" = the latest ``as_of``; q1, q2 and q4 list the sensors with a row for
   the current month (0 where nothing today), sorted by the value rounded to
   9 decimals descending, then ``sensor_id`` descending (the values themselves
   are not rounded); q3 has a row per period of the current day that starts
   before now, ``period_start`` in the zone's time with its offset, and a
   column per q1 sensor in id order, NULL where it has no piece.

Restrictions: none on the rules. Choices where the docs are silent: see
above (line handling, timestamp grammar, control characters) and one
``counter_decrease`` record per event (a successor can be recorded twice).
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from meterlake.core.config import SemanticsConf, load_config
from oracle import sql
from oracle.sql import HALF_HOUR_US

__all__ = ["OracleResult", "compute_answers", "contract_rows", "tariff_rows"]

# The walk is given the bad readings and this many after each (and more
# where that is not enough).
WALK_AFTER_BAD = 16


@dataclass(frozen=True)
class OracleResult:
    """What the pipeline must agree with. Instants are tz-aware UTC pandas columns."""

    readings: pd.DataFrame  # accepted: sensor_id, timestamp, energy, line_no
    quarantine: pd.DataFrame  # one row per event: line_no, sensor_id, timestamp, energy,
    #                           reason, line
    quarantine_counts: dict[str, int]  # reason -> events
    pieces: pd.DataFrame  # sensor_id, period_start, day, month, kwh, band, price, cost_eur,
    #                       as_of (the closing reading of the piece's interval)
    month_energy: pd.DataFrame  # sensor_id, month, energy_kwh, as_of
    day_energy: pd.DataFrame  # sensor_id, day, energy_kwh, as_of
    halfhour_energy: pd.DataFrame  # sensor_id, day, period_start, energy_kwh
    day_cost: pd.DataFrame  # sensor_id, day, cost_eur, as_of
    month_plan_cost: pd.DataFrame  # sensor_id, month, plan, cost_eur, as_of
    now: pd.Timestamp | None  # the latest as_of; None when there are no pieces
    q1: pd.DataFrame  # sensor_id, energy_kwh (current month)
    q2: pd.DataFrame  # sensor_id, energy_kwh (current day)
    q3: pd.DataFrame  # period_start (local time, with offset), one column per sensor
    q4: pd.DataFrame  # sensor_id, cost_eur (current day)
    plans: pd.DataFrame  # sensor_id, plan, cost_eur, contracted, saving_eur (current month)


# --------------------------------------------------------------------------- tariff


def _minute_of_day(clock: str) -> int:
    hours, minutes = clock.strip().split(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= value <= 1440 or value % 30:
        raise ValueError(f"tariff time {clock!r} is not a half hour of the day")
    return value


_DAY_TYPES = ("weekday", "saturday", "sunday")


def _day_bands(spans: dict[str, list[str]], where: str) -> dict[int, str]:
    """{band: ["HH:MM-HH:MM", ...]} -> slot (0-47) -> band, covering the day once."""
    bands: dict[int, str] = {}
    for band, intervals in spans.items():
        for interval in intervals:
            first, last = (_minute_of_day(x) for x in interval.split("-"))
            if last <= first:
                last += 1440
            for slot in range(first // 30, last // 30):
                if slot % 48 in bands:
                    raise ValueError(f"{where} slot {slot % 48} in two bands")
                bands[slot % 48] = band
    if len(bands) != 48:
        raise ValueError(f"{where} schedule does not cover the day")
    return bands


# The tariff lookup table's columns (tariff_rows' tuples) and their types.
TARIFF_TYPES = {
    "plan": pa.string(), "effective_from": pa.date32(), "effective_until": pa.date32(),
    "season": pa.string(), "day_type": pa.string(), "slot": pa.int32(), "band": pa.string(),
    "price": pa.float64(),
}


def tariff_rows(
    path: str | Path,
) -> list[tuple[str, date, date | None, str, str, int, str, float]]:
    """The tariff file's plans as a lookup table, checked.

    One row per plan, price entry, season, day type (weekday, saturday, sunday: a
    daily cycle gives the same bands to all three) and half-hour slot of the local
    day (0-47): ``(plan, effective_from, effective_until, season, day_type, slot,
    band, price)``; ``effective_until`` is the plan's next entry's start (exclusive)
    or None.
    """
    data = tomllib.loads(Path(path).read_text())
    cycles, rows = data.get("cycles", {}), []
    if not data.get("plans"):
        raise ValueError(f"{path}: no plans")
    for plan, entry in data["plans"].items():
        terms = sorted(entry["prices"], key=lambda t: str(t["effective_from"]))
        starts = [date.fromisoformat(str(t["effective_from"])) for t in terms]
        if len(set(starts)) != len(starts):
            raise ValueError(f"{path}: plan {plan} has two prices starting on the same day")
        for i, term in enumerate(terms):
            until = starts[i + 1] if i + 1 < len(terms) else None
            cycle = cycles[term.get("cycle", entry.get("cycle"))]
            for season in ("winter", "summer"):
                for day_type in _DAY_TYPES:
                    spans = cycle[season] if cycle.get("kind", "daily") == "daily" \
                        else cycle[season][day_type]
                    bands = _day_bands(spans, f"{path}: {plan} {season} {day_type}")
                    for band in set(bands.values()):
                        if band not in term or term[band] < 0:
                            raise ValueError(f"{path}: {plan}: band {band!r} has no price")
                    rows += [
                        (plan, starts[i], until, season, day_type, slot, band,
                         float(term[band]))
                        for slot, band in sorted(bands.items())
                    ]  # fmt: skip
    return rows


def contract_rows(path: str | Path) -> tuple[str, list[tuple[str, str]]]:
    """The default plan and the (sensor_id, plan) overrides of the tariff file."""
    data = tomllib.loads(Path(path).read_text())
    contracts = data.get("contracts", {})
    plans = list(data["plans"])
    default = contracts.get("default", plans[0])
    overrides = list(contracts.get("meters", {}).items())
    for plan in [default, *(p for _, p in overrides)]:
        if plan not in plans:
            raise ValueError(f"{path}: unknown plan {plan!r}")
    return default, overrides


def _epoch_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment} is naive: give the instant a time zone")
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = frame[column].dt.tz_convert("UTC")
    return frame


def _walk(con: duckdb.DuckDBPyConnection) -> None:
    """Rules 6-10 for the readings the fast path cannot decide (table `walk`)."""
    if not con.execute("SELECT count(*) FROM valid WHERE bad").fetchone()[0]:
        con.execute(sql.NO_WALK)
        return
    for statement in sql.WALK_PREPARE:
        con.execute(statement)
    con.execute(sql.WALK_STARTS, {"after": WALK_AFTER_BAD})
    con.execute(sql.WALK_ROWS, {"after": WALK_AFTER_BAD})
    while True:
        con.execute(sql.WALK)
        con.execute(sql.WALK_CHECK)
        merge, short = con.execute(
            "SELECT count(*) FILTER (WHERE merge), count(*) FILTER (WHERE short) FROM walk_ends"
        ).fetchone()
        if merge:
            con.execute(sql.WALK_MERGE)
        elif short:
            con.execute(sql.WALK_EXTEND)
            con.execute(sql.WALK_ROWS, {"after": WALK_AFTER_BAD})
        else:
            break
    con.execute("DELETE FROM walk WHERE NOT judged")


def _load_settings(
    con: duckdb.DuckDBPyConnection,
    semantics: SemanticsConf,
    now: datetime | None,
    walk_all: bool,
    batch_ends: list[int] | None,
) -> None:
    """The settings as a one-row table `cfg`, and the tariff lookup table `tariff`."""
    min_ts = semantics.min_timestamp
    con.execute(
        """
        CREATE TABLE cfg AS SELECT
            $zone::VARCHAR AS zone, $min_local::TIMESTAMP AS min_local,
            $min_utc_us::BIGINT AS min_utc_us, $now_us::BIGINT AS now_us,
            $skew_us::BIGINT AS skew_us, $lateness_us::BIGINT AS lateness_us,
            $max_power_kw::DOUBLE AS max_power_kw, $walk_all::BOOLEAN AS walk_all,
            $batch_ends::BIGINT[] AS batch_ends,
            greatest($lateness_us::BIGINT, 1000000) AS bucket_us
        """,
        {
            "zone": semantics.zone,
            "min_local": min_ts if min_ts.tzinfo is None else None,
            "min_utc_us": _epoch_us(min_ts) if min_ts.tzinfo is not None else None,
            "now_us": _epoch_us(now) if now is not None else None,
            "skew_us": round(semantics.max_clock_skew_s * 1e6),
            "lateness_us": round(semantics.allowed_lateness_s * 1e6),
            "max_power_kw": semantics.max_power_kw,
            "walk_all": walk_all,
            "batch_ends": batch_ends,
        },
    )
    # A few thousand rows: as Arrow columns (executemany took 0.7 s a call)
    columns = list(zip(*tariff_rows(semantics.tariff), strict=True))
    rows = pa.table([pa.array(column, kind) for column, kind in zip(
        columns, TARIFF_TYPES.values(), strict=True)], names=list(TARIFF_TYPES))
    con.register("tariff_rows", rows)
    con.execute("CREATE TABLE tariff AS SELECT * FROM tariff_rows")
    con.unregister("tariff_rows")
    default, overrides = contract_rows(semantics.tariff)
    con.execute("CREATE TABLE contract_default AS SELECT $plan::VARCHAR AS plan", {"plan": default})
    con.execute("CREATE TABLE contract_override (sensor_id VARCHAR, plan VARCHAR)")
    if overrides:
        con.executemany("INSERT INTO contract_override VALUES (?, ?)", overrides)


def _check_periods(con: duckdb.DuckDBPyConnection, zone: str) -> None:
    half_hours, untariffed = con.execute(
        f"""SELECT bool_and(offset_us % {HALF_HOUR_US} = 0),
                   min(day) FILTER (WHERE price IS NULL)
            FROM periods"""
    ).fetchone()
    if half_hours is False:
        raise ValueError(f"zone {zone}: an offset that is not a whole number of half hours")
    if untariffed is not None:
        raise ValueError(f"no tariff in force on {untariffed}")


def _q3(con: duckdb.DuckDBPyConnection, sensors: list[str], zone: str) -> pd.DataFrame:
    """The long q3 table laid out wide: a column per sensor, in id order (layout only)."""
    long = con.execute("SELECT * FROM q3_long ORDER BY period_start, sensor_id").df()
    wide = long.pivot(index="period_start", columns="sensor_id", values="energy_kwh")
    wide = wide.reindex(columns=sensors).astype("float64")
    wide.columns.name = None
    q3 = wide.reset_index()
    q3["period_start"] = q3["period_start"].astype(f"datetime64[us, {zone}]")
    return q3


def compute_answers(
    readings_file: str | Path,
    semantics: SemanticsConf | None = None,
    *,
    now: datetime | None = None,
    walk_all: bool = False,
    batches: Sequence[int] | None = None,
) -> OracleResult:
    """Judge every line of ``readings_file``; compute silver, gold and the views.

    ``semantics`` defaults to the ``[semantics]`` of ``conf/meterlake.toml``;
    its ``tariff`` names the tariff file. ``now`` (tz-aware) turns on the
    ``max_clock_skew_s`` rule. ``walk_all`` sends every reading through the
    recursive walk instead of the fast path (slow; to test that both agree).
    ``batches``: the micro-batches the stream sees, as counts of consecutive
    lines of the file (blank and header lines included); within a batch each
    sensor's readings are judged in timestamp order, ties in line order
    (semantics §7). None: every line is a batch of its own (arrival order).
    """
    semantics = semantics or load_config().semantics
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        ends = None if batches is None else list(itertools.accumulate(batches))
        _load_settings(con, semantics, now, walk_all, ends)
        for statement in sql.MACROS:
            con.execute(statement)
        try:
            con.execute(sql.READ, {"path": str(readings_file)})
        except duckdb.InvalidInputException as exc:
            raise ValueError(f"{readings_file}: {exc}") from None
        for statement in [*sql.LINES, sql.VALID]:
            con.execute(statement)
        _walk(con)
        for statement in sql.JUDGED + sql.PIECES:
            con.execute(statement)
        _check_periods(con, semantics.zone)

        gold = {}
        for name, query in sql.GOLD.items():
            con.execute(f"CREATE TABLE {name} AS {query}")
            gold[name] = con.execute(f"SELECT * FROM {name}").df()
        for statement in sql.VIEW_PREPARE:
            con.execute(statement)
        views = {name: con.execute(query).df() for name, query in sql.VIEWS.items()}
        q3 = _q3(con, sorted(views["q1"]["sensor_id"]), semantics.zone)
        now_row = con.execute("SELECT now_ts FROM clock").fetchone()
        counts = dict(
            con.execute(
                "SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY reason"
            ).fetchall()
        )
        readings = con.execute(
            """SELECT sensor_id, make_timestamp(t)::TIMESTAMPTZ AS timestamp, e AS energy, line_no
               FROM accepted ORDER BY sensor_id, t"""
        ).df()
        quarantine = con.execute("SELECT * FROM quarantine ORDER BY line_no, reason").df()
        pieces = con.execute("SELECT * FROM pieces ORDER BY sensor_id, period_start, as_of").df()
    finally:
        con.close()

    return OracleResult(
        readings=_utc(readings, "timestamp"),
        quarantine=_utc(quarantine, "timestamp"),
        quarantine_counts=counts,
        pieces=_utc(pieces, "period_start", "as_of"),
        month_energy=_utc(gold["month_energy"], "as_of"),
        day_energy=_utc(gold["day_energy"], "as_of"),
        halfhour_energy=_utc(gold["halfhour_energy"], "period_start"),
        day_cost=_utc(gold["day_cost"], "as_of"),
        month_plan_cost=_utc(gold["month_plan_cost"], "as_of"),
        now=pd.Timestamp(now_row[0]).tz_convert("UTC") if now_row else None,
        q1=views["q1"],
        q2=views["q2"],
        q3=q3,
        q4=views["q4"],
        plans=views["plans"],
    )
