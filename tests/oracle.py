"""The oracle: a batch reference implementation of the semantics, in DuckDB SQL.

This module is the *reference* the streaming pipeline is checked against. From
a readings file in the publisher's format it computes, in one batch, what
bronze -> silver -> gold must end up holding: the judgement of every line
(accepted, or its quarantine code), the silver pieces, the four gold tables
and the four sorted views. It follows the shared contract
(``/work/shared/spec/semantics.md``) and the project's decisions where the
contract is silent (``docs/semantics.md``).

Independence: it shares no code with the Spark pipeline. It reads only the
semantics settings (a ``meterlake.config.SemanticsConf``) and the tariff file
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
     the one before them: all that rules 6-10 can look at. The good readings
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
   TOML: the tariff effective on the local date, its winter or summer
   schedule, slot -> band and price. ``cost_eur = kwh * price`` (energy term
   only).

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

from meterlake.config import SemanticsConf, load_config

__all__ = ["OracleResult", "compute_answers", "tariff_rows"]

HALF_HOUR_US = 30 * 60 * 1_000_000
# The walk is given the bad readings and this many after each (and more
# where that is not enough).
WALK_AFTER_BAD = 16

_TS_SIMPLE = r"^\d{4}-\d{2}-\d{2} (?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d$"
_TS_ISO = (
    r"^(\d{4}-\d{2}-\d{2})[T ]((?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)(\.\d+)?"
    r"(Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?$"
)
_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_BLANK = r"[\s\p{Z}]*"
_CONTROL = r"[\x00-\x1f\x7f\x{80}-\x{9f}]"
_READING = "STRUCT(t BIGINT, e DOUBLE, n BIGINT)"


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
    now: pd.Timestamp | None  # the latest as_of; None when there are no pieces
    q1: pd.DataFrame  # sensor_id, energy_kwh (current month)
    q2: pd.DataFrame  # sensor_id, energy_kwh (current day)
    q3: pd.DataFrame  # period_start (local time, with offset), one column per sensor
    q4: pd.DataFrame  # sensor_id, cost_eur (current day)


# --------------------------------------------------------------------------- tariff


def _minute_of_day(clock: str) -> int:
    hours, minutes = clock.strip().split(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= value <= 1440 or value % 30:
        raise ValueError(f"tariff time {clock!r} is not a half hour of the day")
    return value


def tariff_rows(path: str | Path) -> list[tuple[date, date | None, str, int, str, float]]:
    """The tariff file as a lookup table, checked.

    One row per tariff, season and half-hour slot of the local day (0-47):
    ``(effective_from, effective_until, season, slot, band, price)``;
    ``effective_until`` is the next tariff's start (exclusive) or None.
    """
    data = tomllib.loads(Path(path).read_text())
    tariffs = sorted(data.get("tariff", []), key=lambda t: str(t["effective_from"]))
    starts = [date.fromisoformat(str(t["effective_from"])) for t in tariffs]
    if not tariffs or len(set(starts)) != len(starts):
        raise ValueError(f"{path}: no tariff, or two starting on the same day")
    rows = []
    for i, tariff in enumerate(tariffs):
        until = starts[i + 1] if i + 1 < len(tariffs) else None
        for season in ("winter", "summer"):
            bands: dict[int, str] = {}
            for band, intervals in tariff[season].items():
                if band not in tariff["prices"]:
                    raise ValueError(f"{path}: band {band!r} has no price")
                for interval in intervals:
                    first, last = (_minute_of_day(x) for x in interval.split("-"))
                    if last <= first:
                        last += 1440
                    for slot in range(first // 30, last // 30):
                        if slot % 48 in bands:
                            raise ValueError(f"{path}: {season} slot {slot % 48} in two bands")
                        bands[slot % 48] = band
            if len(bands) != 48:
                raise ValueError(f"{path}: the {season} schedule does not cover the day")
            rows += [
                (starts[i], until, season, slot, band, float(tariff["prices"][band]))
                for slot, band in sorted(bands.items())
            ]
    return rows


# --------------------------------------------------------------------------- SQL

# 1. The file -> one row per line -> parsed fields -> rules 1-5 of the docs.
_SQL_MACROS = [
    """
    CREATE MACRO zone_offset_us(z, u) AS epoch_us(timezone(z, u)) - epoch_us(u)
    """,
    # The offset for a naive local time `lt`, given the zone's offsets a day
    # before (o_prev) and after (o_next): the offset in force before the
    # transition when the local time is repeated or skipped.
    """
    CREATE MACRO local_offset_us(z, lt, o_prev, o_next) AS CASE
        WHEN o_prev = o_next THEN o_prev
        WHEN zone_offset_us(z, lt::TIMESTAMPTZ - to_microseconds(o_prev)) = o_prev THEN o_prev
        WHEN zone_offset_us(z, lt::TIMESTAMPTZ - to_microseconds(o_next)) = o_next THEN o_next
        ELSE o_prev END
    """,
]

# Numbered lines of the file; blank lines are not readings, and a header as
# the first of the others is skipped (both as the publisher does).
_SQL_READ = r"""
    CREATE TABLE raw_lines AS
    WITH numbered AS (
        SELECT line_no, CASE WHEN suffix(line, chr(13)) THEN line[:-2] ELSE line END AS line
        FROM (
            SELECT unnest(l) AS line, generate_subscripts(l, 1) AS line_no
            FROM (SELECT string_split(content, chr(10)) AS l FROM read_text($path))
        )
    ), readings AS (
        SELECT * FROM numbered WHERE NOT regexp_full_match(line, '\s*')
    )
    SELECT * FROM readings
    WHERE line_no > (SELECT min(line_no) FROM readings)
       OR list_transform(string_split(lower(line), ';'), lambda f: trim(f))
          <> ['timestamp', 'sensor_id', 'energy']
"""

_SQL_LINES = [
    f"""
    CREATE TABLE parsed AS
    SELECT line_no, ts, sensor_id, energy_text, energy,
           CASE WHEN simple_ts THEN try_cast(ts AS TIMESTAMP)
                ELSE try_cast(m.d || ' ' || m.hms AS TIMESTAMP) END AS local_ts,
           CASE WHEN simple_ts OR m.frac = '' THEN 0
                ELSE CAST(rpad(m.frac[2:7], 6, '0') AS BIGINT) END AS frac_us,
           CASE WHEN simple_ts OR m.tz = '' THEN NULL
                WHEN m.tz = 'Z' THEN 0
                ELSE (CASE WHEN m.tz[1] = '-' THEN -1 ELSE 1 END)
                     * (CAST(m.tz[2:3] AS BIGINT) * 60
                        + CASE WHEN length(m.tz) > 3 THEN CAST(m.tz[-2:] AS BIGINT) ELSE 0 END)
           END AS offset_min
    FROM (
        SELECT *,
               CASE WHEN NOT simple_ts
                    THEN regexp_extract(ts, '{_TS_ISO}', ['d', 'hms', 'frac', 'tz']) END AS m,
               CASE WHEN regexp_full_match(energy_text, '{_NUMBER}')
                    THEN try_cast(energy_text AS DOUBLE) END AS energy
        FROM (
            SELECT line_no, parts[1] AS ts, parts[2] AS sensor_id,
                   CASE WHEN len(parts) = 3 THEN parts[3]
                        WHEN len(parts) > 3 THEN array_to_string(parts[3:], ';') END
                       AS energy_text,
                   regexp_full_match(parts[1], '{_TS_SIMPLE}') AS simple_ts
            FROM (SELECT line_no, string_split(line, ';') AS parts FROM raw_lines)
        )
    )
    """,
    """
    CREATE TABLE local_hours AS
    SELECT lh, zone_offset_us(zone, (lh - INTERVAL 1 DAY)::TIMESTAMPTZ) AS o_prev,
               zone_offset_us(zone, (lh + INTERVAL 1 DAY)::TIMESTAMPTZ) AS o_next
    FROM (SELECT DISTINCT date_trunc('hour', local_ts) AS lh
          FROM parsed WHERE local_ts IS NOT NULL AND offset_min IS NULL
          UNION SELECT date_trunc('hour', min_local) FROM cfg WHERE min_local IS NOT NULL),
         cfg
    """,
    """
    CREATE TABLE limits AS
    SELECT coalesce(c.min_utc_us,
                    epoch_us(c.min_local)
                    - local_offset_us(c.zone, c.min_local, h.o_prev, h.o_next)) AS min_us,
           c.now_us, c.skew_us
    FROM cfg c LEFT JOIN local_hours h ON h.lh = date_trunc('hour', c.min_local)
    """,
    f"""
    CREATE TABLE lines AS
    SELECT line_no, sensor_id, t, energy AS e,
           CASE WHEN batch_ends IS NULL THEN line_no
                ELSE len(list_filter(batch_ends, lambda x: x < line_no)) END AS batch,
           CASE WHEN coalesce(ts, '') = '' OR coalesce(sensor_id, '') = ''
                     OR coalesce(energy_text, '') = '' THEN 'missing_field'
                WHEN regexp_full_match(sensor_id, '{_BLANK}') OR length(sensor_id) > 64
                     OR regexp_matches(sensor_id, '{_CONTROL}') THEN 'bad_sensor_id'
                WHEN t IS NULL OR t < min_us OR t - now_us > skew_us THEN 'bad_timestamp'
                WHEN energy IS NULL OR NOT isfinite(energy) OR energy < 0 THEN 'bad_energy'
           END AS reason
    FROM (
        SELECT p.*, l.*, c.batch_ends,
               epoch_us(p.local_ts) + p.frac_us
               - coalesce(p.offset_min * 60000000,
                          local_offset_us(c.zone, p.local_ts, h.o_prev, h.o_next)) AS t
        FROM parsed p
        LEFT JOIN local_hours h ON h.lh = date_trunc('hour', p.local_ts)
        CROSS JOIN cfg c CROSS JOIN limits l
    )
    """,
]

# 2. Rules 6-10, the fast path: LAG over judging order; `bad` readings go to
#    the walk.
_SQL_VALID = """
    CREATE TABLE valid AS
    SELECT v.*,
           c.walk_all OR (t_prev IS NOT NULL AND (
               t <= t_prev OR e - e_prev > c.max_power_kw * (t - t_prev) / 3600000000.0))
               AS bad
    FROM (
        SELECT sensor_id, line_no, t, e, row_number() OVER w AS n,
               lag(t) OVER w AS t_prev, lag(e) OVER w AS e_prev
        FROM lines WHERE reason IS NULL
        WINDOW w AS (PARTITION BY sensor_id ORDER BY batch, t, line_no)
    ) v, cfg c
"""

_SQL_WALK_PREPARE = [
    """
    CREATE TABLE bad AS
    SELECT sensor_id, n, t_prev, lag(n, 1, 0) OVER (PARTITION BY sensor_id ORDER BY n)
               AS prev_bad
    FROM valid WHERE bad
    """,
    # For each bad reading h, the good readings of the run before it (all
    # accepted and increasing when the walk jumps over them) that the state
    # must hold at h: those within the lateness of the run's last one, plus
    # the one before them. Found by an equi-join on time buckets as wide as
    # the lateness. `complete`: the run reaches below the lateness, so these
    # rows are all the state at h (nothing that arrived earlier can matter).
    f"""
    CREATE TABLE skipped AS
    WITH runs AS (
        SELECT b.sensor_id, b.n AS h, b.prev_bad, b.t_prev - c.lateness_us AS cut,
               b.t_prev AS t_last, c.bucket_us
        FROM bad b, cfg c
        WHERE b.t_prev IS NOT NULL AND b.n - 1 > b.prev_bad
    ), tail AS (
        SELECT r.sensor_id, r.h, r.prev_bad, r.cut, v.n, v.t, v.e
        FROM (SELECT *, unnest(range(cut // bucket_us, t_last // bucket_us + 1)) AS bucket
              FROM runs) r
        JOIN (SELECT valid.*, t // bucket_us AS bucket FROM valid, cfg) v
            ON v.sensor_id = r.sensor_id AND v.bucket = r.bucket
        WHERE v.n > r.prev_bad AND v.n < r.h AND v.t >= r.cut
    ), before AS (
        SELECT v.sensor_id, f.h, v.n, v.t, v.e
        FROM (SELECT sensor_id, h, prev_bad, min(n) AS i0 FROM tail GROUP BY ALL) f
        JOIN valid v ON v.sensor_id = f.sensor_id AND v.n = f.i0 - 1
        WHERE f.i0 - 1 > f.prev_bad
    )
    SELECT sensor_id, h, list({{'t': t, 'e': e, 'n': n}}::{_READING} ORDER BY n) AS rows,
           min(n) AS first_n, bool_or(is_before) AS complete
    FROM (SELECT sensor_id, h, n, t, e, false AS is_before FROM tail
          UNION ALL SELECT *, true FROM before)
    GROUP BY sensor_id, h
    """,
    "CREATE TABLE walk_extension (sensor_id VARCHAR, n BIGINT)",
]

# Where the walk may start afresh, in parallel: a sensor's first bad reading,
# and every bad reading whose skipped readings are complete and begin more
# than $after readings after the previous bad one (so the walk before it is
# most likely done by then). The glue drops a start when the walk before it
# was still busy at its skipped readings (its state is not the assumed one).
_SQL_WALK_STARTS = """
    CREATE TABLE walk_starts AS
    SELECT b.sensor_id, b.n AS h, b.prev_bad, coalesce(s.first_n, b.n) AS first_n
    FROM bad b LEFT JOIN skipped s ON s.sensor_id = b.sensor_id AND s.h = b.n
    WHERE b.prev_bad = 0 OR (s.complete AND s.first_n > b.prev_bad + $after)
"""

# The readings the walk may visit: the bad ones, the $after readings after
# each, and the extensions given to segments that ran out of readings; with
# the next bad reading after each and the skipped rows of each bad one.
_SQL_WALK_ROWS = """
    CREATE OR REPLACE TABLE walk_rows AS
    SELECT v.sensor_id, v.n, v.t, v.e, coalesce(s.rows, []) AS skipped,
           min(CASE WHEN v.bad THEN v.n END) OVER (
               PARTITION BY v.sensor_id ORDER BY v.n
               ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_bad
    FROM (
        SELECT sensor_id, n + unnest(range(0, $after + 1)) AS n FROM bad
        UNION SELECT sensor_id, n FROM walk_extension
    ) g
    JOIN valid v USING (sensor_id, n)
    LEFT JOIN skipped s ON s.sensor_id = v.sensor_id AND s.h = v.n
"""

# The walk: the state machine of rules 6-10, one row per judged reading. All
# segments (from each walk start to the next one) advance together, one
# reading per segment and iteration. State: `acc`, the accepted readings
# within the lateness of the latest one plus the one before them, sorted by
# instant (acc[-1] is the latest accepted reading); `pos`, the reading judged
# last; `clean`, whether that reading is the latest accepted one. Clean: the
# good readings that follow are accepted by the fast path, so the walk jumps
# to the next bad reading, merging the skipped readings into `acc` (they all
# follow acc in time). Not clean: it judges the next reading. A segment stops
# at the next walk start (or when the readings it was given run out).
_SQL_WALK = f"""
    CREATE OR REPLACE TABLE walk AS
    WITH RECURSIVE walk(sensor_id, seg_end, pos, clean, next_bad, acc, judged, reason,
                        decrease, succ_n) AS (
        SELECT sensor_id, lead(h) OVER (PARTITION BY sensor_id ORDER BY h), prev_bad, true, h,
               []::{_READING}[], false, NULL::VARCHAR, false, NULL::BIGINT
        FROM walk_starts
        UNION ALL
        SELECT sensor_id, seg_end, n, coalesce(new_acc[-1].n = n, false), next_bad, new_acc,
               true, reason, decrease, succ_n
        FROM (
            SELECT *,
                   CASE WHEN below IS NULL THEN keep ELSE list_prepend(below, keep) END
                       AS new_acc
            FROM (
                SELECT *,
                       list_filter(acc2, lambda x: x.t >= acc2[-1].t - lateness_us) AS keep,
                       list_filter(acc2, lambda x: x.t < acc2[-1].t - lateness_us)[-1]
                           AS below
                FROM (
                    SELECT *,
                           CASE WHEN reason IS NULL
                                THEN list_concat(list_filter(acc1, lambda x: x.t < t),
                                                 list_prepend({{'t': t, 'e': e, 'n': n}},
                                                              list_filter(acc1, lambda x: x.t > t)))
                                ELSE acc1 END AS acc2,
                           coalesce(reason IS NULL AND e < pred.e, false) AS decrease,
                           CASE WHEN reason IS NULL AND succ.e < e THEN succ.n END AS succ_n
                    FROM (
                        SELECT *,
                               CASE WHEN acc1[-1].t - t > lateness_us THEN 'too_late'
                                    WHEN same.e = e THEN 'duplicate'
                                    WHEN same IS NOT NULL THEN 'conflicting_duplicate'
                                    WHEN e - pred.e > max_power_kw * (t - pred.t) / 3600000000.0
                                        THEN 'implausible_jump'
                                    WHEN succ.e - e > max_power_kw * (succ.t - t) / 3600000000.0
                                        THEN 'implausible_jump'
                               END AS reason
                        FROM (
                            SELECT *,
                                   list_filter(acc1, lambda x: x.t = t)[1] AS same,
                                   list_filter(acc1, lambda x: x.t < t)[-1] AS pred,
                                   list_filter(acc1, lambda x: x.t > t)[1] AS succ
                            FROM (
                                SELECT w.sensor_id, w.seg_end, r.n, r.t, r.e, r.next_bad,
                                       list_concat(w.acc, list_filter(
                                           r.skipped, lambda x: x.n > w.pos)) AS acc1,
                                       c.lateness_us, c.max_power_kw
                                FROM walk w
                                JOIN walk_rows r
                                    ON r.sensor_id = w.sensor_id
                                   AND r.n = CASE WHEN w.clean THEN w.next_bad ELSE w.pos + 1 END
                                CROSS JOIN cfg c
                                WHERE w.seg_end IS NULL OR r.n < w.seg_end
                            )
                        )
                    )
                )
            )
        )
    )
    SELECT sensor_id, seg_end, pos AS n, clean, reason, decrease, succ_n, judged
    FROM walk
"""

# Segments that ended where they should not have: still busy (not clean, or
# past the skipped rows) at the next walk start, whose assumed state is then
# wrong ("merge": drop that start), or not clean when the readings given ran
# out ("short": give the walk more readings).
_SQL_WALK_CHECK = """
    CREATE OR REPLACE TABLE walk_ends AS
    SELECT e.*, s.first_n, v.last,
           e.n >= s.first_n AS merge,
           NOT e.clean AND e.n < coalesce(e.seg_end - 1, v.last) AS short
    FROM (SELECT sensor_id, seg_end, arg_max(n, n) AS n, arg_max(clean, n) AS clean
          FROM walk GROUP BY sensor_id, seg_end) e
    JOIN (SELECT sensor_id, max(n) AS last FROM valid GROUP BY ALL) v USING (sensor_id)
    LEFT JOIN walk_starts s ON s.sensor_id = e.sensor_id AND s.h = e.seg_end
"""

_SQL_WALK_MERGE = """
    DELETE FROM walk_starts s USING walk_ends e
    WHERE e.merge AND s.sensor_id = e.sensor_id AND s.h = e.seg_end
"""

# A segment that ran out of readings gets all of them up to its end.
_SQL_WALK_EXTEND = """
    INSERT INTO walk_extension
    SELECT sensor_id, unnest(range(n + 1, coalesce(seg_end, last + 1))) AS n
    FROM walk_ends WHERE short
"""

_SQL_NO_WALK = """
    CREATE OR REPLACE TABLE walk AS
    SELECT NULL::VARCHAR AS sensor_id, NULL::BIGINT AS n, NULL::VARCHAR AS reason,
           false AS decrease, NULL::BIGINT AS succ_n, false AS judged
    WHERE false
"""

# 3. Judgements: accepted readings and the quarantine (one row per event).
_SQL_JUDGED = [
    """
    CREATE TABLE accepted AS
    SELECT v.sensor_id, v.t, v.e, v.line_no
    FROM valid v ANTI JOIN (SELECT * FROM walk WHERE reason IS NOT NULL) w USING (sensor_id, n)
    """,
    """
    CREATE TABLE quarantine AS
    SELECT q.line_no, q.sensor_id, make_timestamp(q.t)::TIMESTAMPTZ AS timestamp,
           q.e AS energy, q.reason, r.line
    FROM (
        SELECT line_no, sensor_id, t, e, reason FROM lines WHERE reason IS NOT NULL
        UNION ALL
        SELECT v.line_no, v.sensor_id, v.t, v.e, coalesce(w.reason, 'counter_decrease')
        FROM valid v JOIN walk w USING (sensor_id, n)
        WHERE w.reason IS NOT NULL OR w.decrease
        UNION ALL
        SELECT v.line_no, v.sensor_id, v.t, v.e, 'counter_decrease'
        FROM valid v ANTI JOIN walk w USING (sensor_id, n)
        WHERE v.e < v.e_prev
        UNION ALL
        SELECT v.line_no, v.sensor_id, v.t, v.e, 'counter_decrease'
        FROM walk w JOIN valid v ON v.sensor_id = w.sensor_id AND v.n = w.succ_n
    ) q JOIN raw_lines r USING (line_no)
    """,
]

# 4. Intervals -> half-hour pieces -> periods with their tariff.
_SQL_PIECES = [
    f"""
    CREATE TABLE raw_pieces AS
    WITH intervals AS (
        SELECT sensor_id, t0, t1, greatest(e1 - e0, 0.0) AS delta,
               t0 - (t0 % {HALF_HOUR_US} + {HALF_HOUR_US}) % {HALF_HOUR_US} AS p0
        FROM (
            SELECT sensor_id, lag(t) OVER w AS t0, lag(e) OVER w AS e0, t AS t1, e AS e1
            FROM accepted WINDOW w AS (PARTITION BY sensor_id ORDER BY t)
        )
        WHERE t0 IS NOT NULL
    )
    SELECT sensor_id, p0 AS period_us, t1 AS as_of_us, delta AS kwh
    FROM intervals WHERE t1 <= p0 + {HALF_HOUR_US}
    UNION ALL
    SELECT sensor_id, p, t1,
           delta * (least(t1, p + {HALF_HOUR_US}) - greatest(t0, p))::DOUBLE / (t1 - t0)
    FROM (SELECT *, unnest(range(p0, t1, {HALF_HOUR_US})) AS p
          FROM intervals WHERE t1 > p0 + {HALF_HOUR_US})
    """,
    """
    CREATE TABLE periods AS
    SELECT p.period_us, make_timestamp(p.period_us)::TIMESTAMPTZ AS period_start,
           p.day, date_trunc('month', p.day)::DATE AS month, p.offset_us, t.band, t.price
    FROM (
        SELECT *,
               offset_us > least(
                   zone_offset_us(zone, make_timestamp(year(day), 1, 1, 0, 0, 0)::TIMESTAMPTZ),
                   zone_offset_us(zone, make_timestamp(year(day), 7, 1, 0, 0, 0)::TIMESTAMPTZ))
                   AS summer
        FROM (
            SELECT period_us, local_start::DATE AS day,
                   (hour(local_start) * 60 + minute(local_start)) // 30 AS slot,
                   epoch_us(local_start) - period_us AS offset_us, zone
            FROM (SELECT period_us, zone,
                         timezone(zone, make_timestamp(period_us)::TIMESTAMPTZ) AS local_start
                  FROM (SELECT DISTINCT period_us FROM raw_pieces), cfg)
        )
    ) p
    LEFT JOIN tariff t
        ON t.effective_from <= p.day AND (t.effective_until IS NULL OR p.day < t.effective_until)
       AND t.season = CASE WHEN p.summer THEN 'summer' ELSE 'winter' END AND t.slot = p.slot
    """,
    """
    CREATE TABLE pieces AS
    SELECT r.sensor_id, p.period_start, p.day, p.month, r.kwh, p.band, p.price,
           r.kwh * p.price AS cost_eur, make_timestamp(r.as_of_us)::TIMESTAMPTZ AS as_of
    FROM raw_pieces r JOIN periods p USING (period_us)
    """,
]

# 5. Gold: one row per key, every month / day / period ever seen.
_SQL_GOLD = {
    "month_energy": """
        SELECT sensor_id, month, sum(kwh) AS energy_kwh, max(as_of) AS as_of
        FROM pieces GROUP BY sensor_id, month ORDER BY sensor_id, month
    """,
    "day_energy": """
        SELECT sensor_id, day, sum(kwh) AS energy_kwh, max(as_of) AS as_of
        FROM pieces GROUP BY sensor_id, day ORDER BY sensor_id, day
    """,
    "halfhour_energy": """
        SELECT sensor_id, day, period_start, sum(kwh) AS energy_kwh
        FROM pieces GROUP BY sensor_id, day, period_start ORDER BY sensor_id, period_start
    """,
    "day_cost": """
        SELECT sensor_id, day, sum(cost_eur) AS cost_eur, max(as_of) AS as_of
        FROM pieces GROUP BY sensor_id, day ORDER BY sensor_id, day
    """,
}

# The clock and the views. Now = the latest as_of; the current day and month
# are its local date and month.
_SQL_VIEW_PREPARE = [
    """
    CREATE TABLE clock AS
    SELECT now_ts, local_now::DATE AS day, date_trunc('month', local_now)::DATE AS month
    FROM (SELECT now_ts, timezone(zone, now_ts) AS local_now
          FROM (SELECT max(as_of) AS now_ts FROM pieces), cfg)
    WHERE now_ts IS NOT NULL
    """,
    """
    CREATE TABLE view_sensors AS
    SELECT m.sensor_id, m.energy_kwh AS month_kwh,
           coalesce(d.energy_kwh, 0.0) AS day_kwh, coalesce(c.cost_eur, 0.0) AS day_cost
    FROM month_energy m JOIN clock k ON m.month = k.month
    LEFT JOIN day_energy d ON d.sensor_id = m.sensor_id AND d.day = k.day
    LEFT JOIN day_cost c ON c.sensor_id = m.sensor_id AND c.day = k.day
    """,
    # q3 in long form: each period of the current day starting before now,
    # times each view sensor; NULL where the sensor has no piece there.
    f"""
    CREATE TABLE q3_long AS
    SELECT p.period_start, s.sensor_id, h.energy_kwh
    FROM (
        SELECT make_timestamp(p)::TIMESTAMPTZ AS period_start
        FROM clock k, cfg c,
             range(epoch_us(k.now_ts) - epoch_us(k.now_ts) % {HALF_HOUR_US}
                       - 52::BIGINT * {HALF_HOUR_US},
                   epoch_us(k.now_ts), {HALF_HOUR_US}) r(p)
        WHERE timezone(c.zone, make_timestamp(p)::TIMESTAMPTZ)::DATE = k.day
    ) p
    CROSS JOIN view_sensors s
    LEFT JOIN halfhour_energy h
        ON h.sensor_id = s.sensor_id AND h.period_start = p.period_start
    """,
]

_SQL_VIEWS = {
    "q1": """SELECT sensor_id, month_kwh AS energy_kwh FROM view_sensors
             ORDER BY round(month_kwh, 9) DESC, sensor_id DESC""",
    "q2": """SELECT sensor_id, day_kwh AS energy_kwh FROM view_sensors
             ORDER BY round(day_kwh, 9) DESC, sensor_id DESC""",
    "q4": """SELECT sensor_id, day_cost AS cost_eur FROM view_sensors
             ORDER BY round(day_cost, 9) DESC, sensor_id DESC""",
}

# --------------------------------------------------------------------------- glue


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
        con.execute(_SQL_NO_WALK)
        return
    for sql in _SQL_WALK_PREPARE:
        con.execute(sql)
    con.execute(_SQL_WALK_STARTS, {"after": WALK_AFTER_BAD})
    con.execute(_SQL_WALK_ROWS, {"after": WALK_AFTER_BAD})
    while True:
        con.execute(_SQL_WALK)
        con.execute(_SQL_WALK_CHECK)
        merge, short = con.execute(
            "SELECT count(*) FILTER (WHERE merge), count(*) FILTER (WHERE short) FROM walk_ends"
        ).fetchone()
        if merge:
            con.execute(_SQL_WALK_MERGE)
        elif short:
            con.execute(_SQL_WALK_EXTEND)
            con.execute(_SQL_WALK_ROWS, {"after": WALK_AFTER_BAD})
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
    con.execute(
        """CREATE TABLE tariff (effective_from DATE, effective_until DATE, season VARCHAR,
                                slot INTEGER, band VARCHAR, price DOUBLE)"""
    )
    con.executemany(
        "INSERT INTO tariff VALUES (?, ?, ?, ?, ?, ?)", tariff_rows(semantics.tariff)
    )


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
        for sql in _SQL_MACROS:
            con.execute(sql)
        try:
            con.execute(_SQL_READ, {"path": str(readings_file)})
        except duckdb.InvalidInputException as exc:
            raise ValueError(f"{readings_file}: {exc}") from None
        for sql in [*_SQL_LINES, _SQL_VALID]:
            con.execute(sql)
        _walk(con)
        for sql in _SQL_JUDGED + _SQL_PIECES:
            con.execute(sql)
        _check_periods(con, semantics.zone)

        gold = {}
        for name, sql in _SQL_GOLD.items():
            con.execute(f"CREATE TABLE {name} AS {sql}")
            gold[name] = con.execute(f"SELECT * FROM {name}").df()
        for sql in _SQL_VIEW_PREPARE:
            con.execute(sql)
        views = {name: con.execute(sql).df() for name, sql in _SQL_VIEWS.items()}
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
        now=pd.Timestamp(now_row[0]).tz_convert("UTC") if now_row else None,
        q1=views["q1"],
        q2=views["q2"],
        q3=q3,
        q4=views["q4"],
    )
