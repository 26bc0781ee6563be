"""The oracle: a batch reference implementation of the semantics, in DuckDB SQL.

This module is the *reference* the streaming pipeline is checked against. It
reads a readings file in the publisher's format and computes, in one batch,
what bronze -> silver -> gold must end up holding: the judgement of every
line (accepted, or its quarantine code), the silver pieces, the four gold
tables and the four sorted views. It follows the shared contract
(``/work/shared/spec/semantics.md``) and the project's decisions where the
contract is silent (``docs/semantics.md``).

Independence: it shares no code with the Spark pipeline. It reads only the
semantics settings (a ``meterlake.config.SemanticsConf``) and the tariff file
(``conf/tariff.toml``, parsed here with ``tomllib``). Every rule is a DuckDB SQL
statement; Python only loads the file, builds the tariff lookup table from the
TOML, runs the statements in order and returns pandas frames.

Input
-----
One reading per line, ``timestamp;sensor_id;energy``, no header. LINE ORDER IS
ARRIVAL ORDER: per sensor, a reading is judged against the readings of the
same sensor on earlier lines (what the pipeline sees, since the publisher keys
messages by sensor). The file must be UTF-8 (otherwise ``ValueError``); a
trailing ``\\r`` is removed and empty lines are skipped (they are not readings).
A line is cut at its first two ``;``: fewer fields mean missing fields, and a
third field holding a further ``;`` is not a number.

How each rule is expressed
--------------------------
1. Per line, in the documented order (first failing rule names the reason):
   ``missing_field`` (a field absent or empty), ``bad_sensor_id`` (blank, more
   than 64 characters, or a control character), ``bad_timestamp``
   (unparseable, before ``min_timestamp``, or more than ``max_clock_skew_s``
   ahead of ``now``: that last rule only when a ``now`` argument is given),
   ``bad_energy`` (not a decimal number, NaN, infinite, negative). Plain
   ``CASE`` over regular expressions and ``TRY_CAST``.

   Timestamps: ``YYYY-MM-DD[T ]HH:MM:SS[.fraction][offset]`` where the
   offset is ``Z``, ``+HH``, ``+HHMM`` or ``+HH:MM`` (any sign); fractions are
   truncated to microseconds. A naive timestamp is Europe/Lisbon (the
   configured zone) wall-clock time, resolved with the offset in force
   *before* the transition: the first occurrence (summer, +01:00) of the
   repeated October hour, and +00:00 for the skipped March hour (01:30 ->
   01:30 UTC). DuckDB's ``timezone()`` alone reads the repeated hour as its
   second occurrence, so the rule is spelled out in SQL: per distinct local
   minute, the offsets one day before and after (``o_prev``, ``o_next``); if
   they differ, ``local - o_prev`` is taken when it is a valid reading of the
   local time, else ``local - o_next`` when valid, else (a gap)
   ``local - o_prev``. This assumes zone transitions fall on whole minutes and
   are more than a day apart (true for Europe/Lisbon). Every instant is
   handled as a BIGINT of microseconds since the epoch (UTC).

2. Per sensor, in arrival order, against the sensor's state: ``too_late``
   (more than ``allowed_lateness_s`` before the latest accepted reading),
   ``duplicate`` / ``conflicting_duplicate`` (an accepted reading with the same
   instant, same / different energy), ``implausible_jump``
   (``e - pred.e > max_power_kw * hours`` against the accepted predecessor in
   time), and the ``counter_decrease`` anomaly (accepted; ``e < pred.e``; also
   recorded for the successor in time when a late reading is accepted before a
   lower one). This is a sequential state machine; it is computed in two parts:

   * The window-function fast path. Call a reading *simple* when its instant is
     later than every earlier valid reading of the sensor (a running maximum).
     While the latest accepted reading is also the latest valid one (the state
     is *clean*), a simple reading can only be judged against that reading
     (no lateness, no duplicate possible), and it is accepted unless it jumps.
     So a reading that is simple and does not jump against the previous simple
     reading (``LAG`` over simple readings) is accepted, with
     ``counter_decrease`` when it is lower. Every other reading is *hard*: late
     readings, repeats, and jumps.
   * The walk: a ``WITH RECURSIVE`` CTE that processes, for all sensors at once
     (one reading per sensor and iteration), the hard readings and the readings
     after a rejected jump until an accepted simple reading makes the state
     clean again. When the state is clean it jumps straight to the next hard
     reading. Its state per sensor is a sorted list of the accepted readings
     of the last ``allowed_lateness_s`` before the latest one, plus the one
     before them (exactly what rules 6-10 can look at); the readings skipped
     over are merged in from a precomputed list. Each row of the walk is one
     judged reading. Readings after a late one keep their judgement (they are
     not re-validated), as documented. To keep the walk small, only the hard
     readings and the ``k`` readings after each static jump are handed to it;
     if a sensor's stretch of rejected jumps is longer, the walk is run again
     with everything (correct, slower).

   For in-order data the walk is empty and everything is window functions. A
   file where most readings are out of order walks every reading (about 40 us
   per iteration): correct, but seconds rather than a fraction of a second.

3. Consumption: consecutive accepted readings in time (``LAG`` over the
   instant) give intervals with ``delta = max(e1 - e0, 0)``; each is cut at
   every half hour (``range()`` of period starts, unnested), and a piece
   covering ``[a, b)`` gets ``delta * (b - a) / (t1 - t0)``. Half hours are
   computed in UTC, which is exact because the zone's offsets are whole half
   hours (checked: an error otherwise).

4. Tariff: per distinct period start, its local time (``timezone()``), local
   ``day`` and ``month``, the half-hour slot of the day, and whether summer
   time is in force (the offset is above the smaller of the offsets on
   1 January and 1 July of that year); joined to the tariff table built from
   the TOML (effective by local date, winter/summer schedule, slot -> band and
   price). ``cost_eur = kwh * price`` (energy term only).

5. Gold and views, as in docs/semantics.md "The clock and the views": gold
   sums pieces per (sensor, month), (sensor, day), (sensor, period) with
   ``as_of`` = the latest closing reading among the intervals summed. "Now" is
   the latest ``as_of``; q1/q2/q4 list the sensors with a row for the current
   month (0 where nothing today), sorted by the value rounded to 9 decimals
   descending, then ``sensor_id`` descending; q3 has one row per period of the
   current day starting before now and one column per such sensor.

Restrictions: none on the rules themselves. Known choices are listed where
they are made (empty lines skipped, non-UTF-8 files refused, fractions beyond
microseconds truncated, one ``counter_decrease`` record per event).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from meterlake.config import SemanticsConf, load_config

__all__ = ["OracleResult", "compute_answers", "tariff_rows"]

HALF_HOUR_US = 30 * 60 * 1_000_000
US_PER_HOUR = 3_600_000_000
# How many readings after a static jump the walk is first given (then all).
WALK_AFTER_JUMP = 256

_TS_PATTERN = (
    r"^(\d{4}-\d{2}-\d{2})[T ]((?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)(\.\d{1,9})?"
    r"(Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?$"
)
_ENERGY_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_CONTROL_CHARS = r"[\x00-\x1f\x7f\x{80}-\x{9f}]"
_READING = "STRUCT(t BIGINT, e DOUBLE, n BIGINT)"


@dataclass(frozen=True)
class OracleResult:
    """Everything the pipeline must agree with. Instants are tz-aware UTC."""

    readings: pd.DataFrame  # accepted: sensor_id, timestamp, energy, line_no
    quarantine: pd.DataFrame  # line_no, sensor_id, timestamp, energy, reason (one per event)
    quarantine_counts: dict[str, int]
    pieces: pd.DataFrame  # sensor_id, period_start, day, month, kwh, band, price, cost_eur, as_of
    month_energy: pd.DataFrame  # sensor_id, month, energy_kwh, as_of
    day_energy: pd.DataFrame  # sensor_id, day, energy_kwh, as_of
    halfhour_energy: pd.DataFrame  # sensor_id, day, period_start, energy_kwh
    day_cost: pd.DataFrame  # sensor_id, day, cost_eur, as_of
    now: pd.Timestamp | None  # the latest as_of (UTC); None without pieces
    q1: pd.DataFrame  # sensor_id, energy_kwh: current month
    q2: pd.DataFrame  # sensor_id, energy_kwh: current day
    q3: pd.DataFrame  # period_start (local, with offset), one column per sensor
    q4: pd.DataFrame  # sensor_id, cost_eur: current day


# --------------------------------------------------------------------------- tariff


def _minutes(clock: str) -> int:
    hours, minutes = clock.strip().split(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= value <= 1440 or value % 30:
        raise ValueError(f"tariff time {clock!r} is not a half hour of the day")
    return value


def tariff_rows(path: str | Path) -> list[tuple[date, date | None, str, int, str, float]]:
    """The tariff file as a lookup table.

    One row per (tariff, season, half-hour slot of the local day):
    ``(effective_from, effective_until, season, slot, band, price)``, where
    ``effective_until`` is the next tariff's start (exclusive) or None.
    """
    data = tomllib.loads(Path(path).read_text())
    tariffs = sorted(data.get("tariff", []), key=lambda t: str(t["effective_from"]))
    if not tariffs:
        raise ValueError(f"{path}: no [[tariff]]")
    starts = [date.fromisoformat(str(t["effective_from"])) for t in tariffs]
    if len(set(starts)) != len(starts):
        raise ValueError(f"{path}: two tariffs start on the same day")
    rows = []
    for i, tariff in enumerate(tariffs):
        until = starts[i + 1] if i + 1 < len(tariffs) else None
        prices = tariff["prices"]
        for season in ("winter", "summer"):
            slots: dict[int, str] = {}
            for band, intervals in tariff[season].items():
                if band not in prices:
                    raise ValueError(f"{path}: band {band!r} has no price")
                for interval in intervals:
                    first, last = (_minutes(x) for x in interval.split("-"))
                    if last <= first:
                        last += 1440
                    for slot in range(first // 30, last // 30):
                        if slot % 48 in slots:
                            raise ValueError(f"{path}: {season} slot {slot % 48} in two bands")
                        slots[slot % 48] = band
            if len(slots) != 48:
                raise ValueError(f"{path}: the {season} schedule does not cover the day")
            rows += [
                (starts[i], until, season, slot, band, float(prices[band]))
                for slot, band in sorted(slots.items())
            ]
    return rows


# --------------------------------------------------------------------------- SQL

# 1. Lines -> fields -> parsed values -> the per-line rules (1-5 of the docs).
_SQL_LINES = [
    """
    CREATE MACRO zone_offset_us(z, u) AS epoch_us(timezone(z, u)) - epoch_us(u)
    """,
    """
    CREATE TABLE fields AS
    SELECT line_no, parts[1] AS ts, parts[2] AS sensor_id,
           CASE WHEN len(parts) >= 3 THEN array_to_string(parts[3:], ';') END AS energy_text
    FROM (SELECT line_no, string_split(line, ';') AS parts FROM raw_lines)
    """,
    f"""
    CREATE TABLE parsed AS
    SELECT line_no, ts, sensor_id, energy_text,
           try_cast(m.d || ' ' || m.hms AS TIMESTAMP) AS local_ts,
           CASE WHEN m.frac = '' THEN 0
                ELSE CAST(rpad(substr(m.frac, 2, 6), 6, '0') AS BIGINT) END AS frac_us,
           CASE WHEN m.tz = '' THEN NULL
                WHEN m.tz = 'Z' THEN 0
                ELSE (CASE WHEN m.tz[1] = '-' THEN -1 ELSE 1 END)
                     * (CAST(m.tz[2:3] AS BIGINT) * 60
                        + CASE WHEN length(m.tz) > 3 THEN CAST(m.tz[-2:] AS BIGINT) ELSE 0 END)
           END AS offset_min,
           CASE WHEN regexp_full_match(energy_text, '{_ENERGY_PATTERN}')
                THEN try_cast(energy_text AS DOUBLE) END AS energy
    FROM (SELECT *, regexp_extract(ts, '{_TS_PATTERN}', ['d', 'hms', 'frac', 'tz']) AS m
          FROM fields)
    """,
    # The zone's offset for every naive local minute used (and min_timestamp):
    # the offset in force before the transition (first occurrence of the
    # repeated hour, pre-switch offset in the skipped hour).
    """
    CREATE TABLE local_minutes AS
    WITH minutes AS (
        SELECT DISTINCT date_trunc('minute', local_ts) AS lm
        FROM parsed WHERE local_ts IS NOT NULL AND offset_min IS NULL
        UNION SELECT date_trunc('minute', min_local) FROM cfg WHERE min_local IS NOT NULL
    ), hours AS (
        SELECT lh,
               zone_offset_us(zone, (lh - INTERVAL 1 DAY)::TIMESTAMPTZ) AS o_prev,
               zone_offset_us(zone, (lh + INTERVAL 1 DAY)::TIMESTAMPTZ) AS o_next
        FROM (SELECT DISTINCT date_trunc('hour', lm) AS lh FROM minutes), cfg
    )
    SELECT lm,
           CASE WHEN o_prev = o_next THEN o_prev
                WHEN zone_offset_us(zone, lm::TIMESTAMPTZ - to_microseconds(o_prev)) = o_prev
                    THEN o_prev
                WHEN zone_offset_us(zone, lm::TIMESTAMPTZ - to_microseconds(o_next)) = o_next
                    THEN o_next
                ELSE o_prev
           END AS offset_us
    FROM minutes JOIN hours ON date_trunc('hour', lm) = lh, cfg
    """,
    """
    CREATE TABLE limits AS
    SELECT coalesce(min_utc_us,
                    epoch_us(min_local) - (SELECT offset_us FROM local_minutes
                                           WHERE lm = date_trunc('minute', min_local)))
               AS min_us,
           now_us, skew_us
    FROM cfg
    """,
    f"""
    CREATE TABLE lines AS
    SELECT p.line_no, p.ts, p.sensor_id, p.energy_text, p.t, p.energy AS e,
           CASE WHEN coalesce(p.ts, '') = '' OR coalesce(p.sensor_id, '') = ''
                     OR coalesce(p.energy_text, '') = '' THEN 'missing_field'
                WHEN regexp_full_match(p.sensor_id, '[\\s\\p{{Z}}]*')
                     OR length(p.sensor_id) > 64
                     OR regexp_matches(p.sensor_id, '{_CONTROL_CHARS}') THEN 'bad_sensor_id'
                WHEN p.t IS NULL OR p.t < l.min_us
                     OR (l.now_us IS NOT NULL AND p.t - l.now_us > l.skew_us) THEN 'bad_timestamp'
                WHEN p.energy IS NULL OR NOT isfinite(p.energy) OR p.energy < 0 THEN 'bad_energy'
           END AS reason
    FROM (
        SELECT parsed.*,
               epoch_us(local_ts) + frac_us
                   - coalesce(offset_min * 60000000, m.offset_us) AS t
        FROM parsed LEFT JOIN local_minutes m ON m.lm = date_trunc('minute', local_ts)
    ) p, limits l
    """,
]

# 2. The per-sensor rules (6-10): static classification for the fast path.
_SQL_CLASSIFY = [
    """
    CREATE TABLE valid0 AS
    SELECT sensor_id, line_no, t, e,
           row_number() OVER w AS n,
           max(t) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS runmax
    FROM lines WHERE reason IS NULL
    WINDOW w AS (PARTITION BY sensor_id ORDER BY line_no)
    """,
    # simple: later than every earlier valid reading; p_*: the previous simple
    # reading, which is the latest accepted one while the state is clean.
    """
    CREATE TABLE valid1 AS
    SELECT *,
           last_value(CASE WHEN simple THEN t END IGNORE NULLS)
               OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS p_t,
           last_value(CASE WHEN simple THEN e END IGNORE NULLS)
               OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS p_e
    FROM (SELECT *, runmax IS NULL OR t > runmax AS simple FROM valid0)
    WINDOW w AS (PARTITION BY sensor_id ORDER BY n)
    """,
    """
    CREATE TABLE valid2 AS
    SELECT *, NOT simple OR jumps OR walk_all AS hard
    FROM (
        SELECT v.*, c.walk_all,
               v.simple AND v.p_t IS NOT NULL
                   AND v.e - v.p_e > c.max_power_kw * (v.t - v.p_t) / 3600000000.0 AS jumps,
               v.simple AND v.p_t IS NOT NULL AND v.e < v.p_e AS decrease,
               greatest(v.t, coalesce(v.runmax, v.t)) AS rmax
        FROM valid1 v, cfg c
    )
    """,
    """
    CREATE TABLE valid AS
    SELECT *,
           min(CASE WHEN hard THEN n END)
               OVER (w ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_hard,
           max(CASE WHEN jumps THEN n END)
               OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS last_jump
    FROM valid2
    WINDOW w AS (PARTITION BY sensor_id ORDER BY n)
    """,
    # The accepted readings a clean jump to hard reading h skips over, that
    # the state must hold at h: those of the run before h within the lateness
    # of the run's last reading, plus the one before them.
    f"""
    CREATE TABLE skipped AS
    SELECT sensor_id, next_hard AS h,
           list({{'t': t, 'e': e, 'n': n}}::{_READING} ORDER BY n) AS rows
    FROM (
        SELECT v.*, max(v.t) OVER run - c.lateness_us AS cut,
               lead(v.t) OVER (PARTITION BY v.sensor_id, v.next_hard ORDER BY v.n) AS next_t
        FROM valid v, cfg c
        WHERE NOT v.hard AND v.next_hard IS NOT NULL
        WINDOW run AS (PARTITION BY v.sensor_id, v.next_hard)
    )
    WHERE t >= cut OR next_t >= cut
    GROUP BY sensor_id, next_hard
    """,
]

# The readings the walk may visit: hard ones and $k after each static jump.
_SQL_WALK_ROWS = """
    CREATE OR REPLACE TABLE walk_rows AS
    SELECT v.sensor_id, v.n, v.t, v.e, v.next_hard, v.rmax,
           coalesce(s.rows, []) AS skipped
    FROM valid v LEFT JOIN skipped s ON s.sensor_id = v.sensor_id AND s.h = v.n
    WHERE v.hard OR v.n - v.last_jump <= coalesce($k, v.n)
"""

# The walk: one judged reading per sensor and iteration. `acc` is the state
# (accepted readings in the lateness window plus the one before, sorted by
# instant); `ptime` its latest instant; `rmax` the latest valid instant so
# far. Clean (ptime = rmax): jump to the next hard reading; else the next one.
_SQL_WALK = f"""
    CREATE OR REPLACE TABLE walk AS
    WITH RECURSIVE walk(sensor_id, pos, next_hard, rmax, ptime, acc, reason, decrease,
                        succ_n) AS (
        SELECT sensor_id, 0::BIGINT, min(n) FILTER (WHERE hard), NULL::BIGINT, NULL::BIGINT,
               []::{_READING}[], NULL::VARCHAR, false, NULL::BIGINT
        FROM valid GROUP BY sensor_id HAVING bool_or(hard)
        UNION ALL
        SELECT sensor_id, n, next_hard, rmax, new_acc[-1].t, new_acc, reason, decrease,
               succ_n
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
                                THEN list_sort(list_append(acc1, {{'t': t, 'e': e, 'n': n}}))
                                ELSE acc1 END AS acc2,
                           reason IS NULL AND pred IS NOT NULL AND e < pred.e AS decrease,
                           CASE WHEN reason IS NULL AND succ.e < e THEN succ.n END AS succ_n
                    FROM (
                        SELECT *,
                               CASE WHEN acc1[-1].t - t > lateness_us THEN 'too_late'
                                    WHEN same.e = e THEN 'duplicate'
                                    WHEN same IS NOT NULL THEN 'conflicting_duplicate'
                                    WHEN e - pred.e > max_power_kw * (t - pred.t) / 3600000000.0
                                        THEN 'implausible_jump'
                               END AS reason
                        FROM (
                            SELECT *,
                                   list_filter(acc1, lambda x: x.t = t)[1] AS same,
                                   list_filter(acc1, lambda x: x.t < t)[-1] AS pred,
                                   list_filter(acc1, lambda x: x.t > t)[1] AS succ
                            FROM (
                                SELECT r.sensor_id, r.n, r.t, r.e, r.next_hard, r.rmax,
                                       list_sort(list_concat(w.acc, list_filter(
                                           r.skipped, lambda x: x.n > w.pos))) AS acc1,
                                       c.lateness_us, c.max_power_kw
                                FROM walk w
                                JOIN walk_rows r
                                    ON r.sensor_id = w.sensor_id
                                   AND r.n = CASE WHEN w.ptime IS NOT DISTINCT FROM w.rmax
                                                  THEN w.next_hard ELSE w.pos + 1 END
                                CROSS JOIN cfg c
                            )
                        )
                    )
                )
            )
        )
    )
    SELECT sensor_id, pos AS n, ptime, rmax, reason, decrease, succ_n
    FROM walk WHERE pos > 0
"""

# A sensor whose walk stopped in an unclean state before its last reading ran
# past the readings it was given (a long stretch after a rejected jump).
_SQL_WALK_TRUNCATED = """
    SELECT count(*) FROM (
        SELECT sensor_id, arg_max(n, n) AS n, arg_max(ptime, n) AS ptime,
               arg_max(rmax, n) AS rmax
        FROM walk GROUP BY sensor_id
    ) w JOIN valid v ON v.sensor_id = w.sensor_id AND v.n = w.n + 1
    WHERE w.ptime IS DISTINCT FROM w.rmax
"""

# 3. Judgement of every line; accepted readings; quarantine events.
_SQL_JUDGED = [
    """
    CREATE TABLE judged AS
    SELECT l.line_no, l.ts, l.sensor_id, l.t, l.e, v.n,
           coalesce(l.reason, w.reason) AS reason,
           coalesce(w.decrease, v.decrease, false) AS decrease,
           w.succ_n
    FROM lines l
    LEFT JOIN valid v ON v.line_no = l.line_no
    LEFT JOIN walk w ON w.sensor_id = v.sensor_id AND w.n = v.n
    """,
    """
    CREATE TABLE quarantine AS
    SELECT line_no, sensor_id, ts AS timestamp_text,
           make_timestamp(t)::TIMESTAMPTZ AS timestamp, e AS energy, reason
    FROM judged WHERE reason IS NOT NULL
    UNION ALL
    SELECT line_no, sensor_id, ts, make_timestamp(t)::TIMESTAMPTZ, e, 'counter_decrease'
    FROM judged WHERE reason IS NULL AND decrease
    UNION ALL
    SELECT s.line_no, s.sensor_id, s.ts, make_timestamp(s.t)::TIMESTAMPTZ, s.e,
           'counter_decrease'
    FROM judged j JOIN judged s ON s.sensor_id = j.sensor_id AND s.n = j.succ_n
    """,
    """
    CREATE TABLE accepted AS
    SELECT sensor_id, t, e, line_no FROM judged WHERE reason IS NULL
    """,
]

# 4. Intervals -> half-hour pieces -> periods with their tariff.
_SQL_PIECES = [
    f"""
    CREATE TABLE raw_pieces AS
    SELECT sensor_id, p AS period_us, t1 AS as_of_us,
           delta * (least(t1, p + {HALF_HOUR_US}) - greatest(t0, p))::DOUBLE / (t1 - t0) AS kwh
    FROM (
        SELECT sensor_id, t0, t1, greatest(e1 - e0, 0.0) AS delta,
               unnest(range(t0 - (t0 % {HALF_HOUR_US} + {HALF_HOUR_US}) % {HALF_HOUR_US},
                            t1, {HALF_HOUR_US})) AS p
        FROM (
            SELECT sensor_id, lag(t) OVER w AS t0, lag(e) OVER w AS e0, t AS t1, e AS e1
            FROM accepted
            WINDOW w AS (PARTITION BY sensor_id ORDER BY t)
        )
        WHERE t0 IS NOT NULL
    )
    """,
    """
    CREATE TABLE periods AS
    SELECT p.*, date_trunc('month', day)::DATE AS month,
           (hour(local_start) * 60 + minute(local_start)) // 30 AS slot,
           offset_us > least(zone_offset_us(zone, make_timestamp(year(day), 1, 1, 0, 0, 0)
                                                     ::TIMESTAMPTZ),
                             zone_offset_us(zone, make_timestamp(year(day), 7, 1, 0, 0, 0)
                                                     ::TIMESTAMPTZ)) AS summer
    FROM (
        SELECT period_us, local_start, local_start::DATE AS day,
               epoch_us(local_start) - period_us AS offset_us, zone
        FROM (
            SELECT period_us, timezone(zone, make_timestamp(period_us)::TIMESTAMPTZ)
                       AS local_start, zone
            FROM (SELECT DISTINCT period_us FROM raw_pieces), cfg
        )
    ) p
    """,
    """
    CREATE TABLE pieces AS
    SELECT r.sensor_id, make_timestamp(r.period_us)::TIMESTAMPTZ AS period_start,
           p.day, p.month, r.kwh, t.band, t.price, r.kwh * t.price AS cost_eur,
           make_timestamp(r.as_of_us)::TIMESTAMPTZ AS as_of
    FROM raw_pieces r
    JOIN periods p USING (period_us)
    LEFT JOIN tariff t
        ON t.effective_from <= p.day AND (t.effective_until IS NULL OR p.day < t.effective_until)
       AND t.season = CASE WHEN p.summer THEN 'summer' ELSE 'winter' END
       AND t.slot = p.slot
    """,
]

# 5. Gold: one row per key, every month / day / period.
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

# The clock: now = latest as_of; current day and month in the zone.
_SQL_CLOCK = """
    CREATE TABLE clock AS
    SELECT now_ts, local_now::DATE AS day, date_trunc('month', local_now)::DATE AS month
    FROM (SELECT now_ts, timezone(zone, now_ts) AS local_now
          FROM (SELECT max(as_of) AS now_ts FROM pieces), cfg)
    WHERE now_ts IS NOT NULL
"""

_SQL_VIEW_SENSORS = """
    CREATE TABLE view_sensors AS
    SELECT m.sensor_id, m.energy_kwh AS month_kwh,
           coalesce(d.energy_kwh, 0.0) AS day_kwh, coalesce(c.cost_eur, 0.0) AS day_cost
    FROM month_energy m CROSS JOIN clock k
    LEFT JOIN day_energy d ON d.sensor_id = m.sensor_id AND d.day = k.day
    LEFT JOIN day_cost c ON c.sensor_id = m.sensor_id AND c.day = k.day
    WHERE m.month = k.month
"""

_SQL_VIEWS = {
    "q1": """SELECT sensor_id, month_kwh AS energy_kwh FROM view_sensors
             ORDER BY round(month_kwh, 9) DESC, sensor_id DESC""",
    "q2": """SELECT sensor_id, day_kwh AS energy_kwh FROM view_sensors
             ORDER BY round(day_kwh, 9) DESC, sensor_id DESC""",
    "q4": """SELECT sensor_id, day_cost AS cost_eur FROM view_sensors
             ORDER BY round(day_cost, 9) DESC, sensor_id DESC""",
}

# q3 in long form: every period of the current day that starts before now,
# times every view sensor; NULL where the sensor has no piece there.
_SQL_Q3_LONG = f"""
    CREATE TABLE q3_long AS
    SELECT p.period_start, s.sensor_id, h.energy_kwh
    FROM (
        SELECT make_timestamp(p)::TIMESTAMPTZ AS period_start
        FROM clock k, cfg c,
             range(epoch_us(k.now_ts) - epoch_us(k.now_ts) % {HALF_HOUR_US}
                       - 26 * {US_PER_HOUR},
                   epoch_us(k.now_ts), {HALF_HOUR_US}) r(p)
        WHERE timezone(c.zone, make_timestamp(p)::TIMESTAMPTZ)::DATE = k.day
    ) p
    CROSS JOIN view_sensors s
    LEFT JOIN halfhour_energy h
        ON h.sensor_id = s.sensor_id AND h.period_start = p.period_start
"""


# --------------------------------------------------------------------------- glue


def _read_lines(path: Path) -> pa.Table:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 ({exc})") from None
    numbered = [
        (i, line.removesuffix("\r")) for i, line in enumerate(text.split("\n"), start=1)
    ]
    numbered = [(i, line) for i, line in numbered if line]
    return pa.table(
        {
            "line_no": pa.array([i for i, _ in numbered], pa.int64()),
            "line": pa.array([line for _, line in numbered], pa.string()),
        }
    )


def _epoch_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("an instant needs a time zone (a naive datetime is ambiguous)")
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = frame[column].dt.tz_convert("UTC")
    return frame


def compute_answers(
    readings_file: str | Path,
    semantics: SemanticsConf | None = None,
    *,
    now: datetime | None = None,
    walk_all: bool = False,
) -> OracleResult:
    """Judge every line of ``readings_file`` and compute silver, gold and the views.

    ``semantics`` defaults to ``conf/meterlake.toml``'s ``[semantics]`` (its
    ``tariff`` path names the tariff file). ``now`` (tz-aware) enables the
    ``max_clock_skew_s`` rule; without it no reading is too far ahead.
    ``walk_all`` sends every reading through the recursive walk instead of the
    window-function fast path (slow; for testing that both agree).
    """
    semantics = semantics or load_config().semantics
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        min_ts = semantics.min_timestamp
        con.execute(
            """
            CREATE TABLE cfg AS SELECT
                $zone::VARCHAR AS zone, $min_local::TIMESTAMP AS min_local,
                $min_utc_us::BIGINT AS min_utc_us, $now_us::BIGINT AS now_us,
                $skew_us::BIGINT AS skew_us, $lateness_us::BIGINT AS lateness_us,
                $max_power_kw::DOUBLE AS max_power_kw, $walk_all::BOOLEAN AS walk_all
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
            },
        )
        con.execute(
            """CREATE TABLE tariff (effective_from DATE, effective_until DATE, season VARCHAR,
                                    slot INTEGER, band VARCHAR, price DOUBLE)"""
        )
        con.executemany("INSERT INTO tariff VALUES (?, ?, ?, ?, ?, ?)", tariff_rows(semantics.tariff))
        raw_lines = _read_lines(Path(readings_file))
        con.register("raw_lines", raw_lines)

        for sql in _SQL_LINES + _SQL_CLASSIFY:
            con.execute(sql)
        for k in (WALK_AFTER_JUMP, None):
            con.execute(_SQL_WALK_ROWS, {"k": k})
            con.execute(_SQL_WALK)
            if not con.execute(_SQL_WALK_TRUNCATED).fetchone()[0]:
                break
        for sql in _SQL_JUDGED + _SQL_PIECES:
            con.execute(sql)

        bad = con.execute(
            f"SELECT count(*) FILTER (WHERE offset_us % {HALF_HOUR_US} <> 0) FROM periods"
        ).fetchone()[0]
        if bad:
            raise ValueError(f"zone {semantics.zone}: offsets that are not whole half hours")
        missing = con.execute("SELECT min(day) FROM pieces WHERE price IS NULL").fetchone()[0]
        if missing is not None:
            raise ValueError(f"no tariff in force on {missing}")

        gold = {}
        for name, sql in _SQL_GOLD.items():
            con.execute(f"CREATE TABLE {name} AS {sql}")
            gold[name] = con.execute(f"SELECT * FROM {name}").df()
        con.execute(_SQL_CLOCK)
        con.execute(_SQL_VIEW_SENSORS)
        views = {name: con.execute(sql).df() for name, sql in _SQL_VIEWS.items()}
        con.execute(_SQL_Q3_LONG)
        sensors = [row[0] for row in con.execute(
            "SELECT sensor_id FROM view_sensors ORDER BY sensor_id").fetchall()]
        if sensors:
            q3 = con.execute(
                "PIVOT q3_long ON sensor_id USING sum(energy_kwh) GROUP BY period_start "
                "ORDER BY period_start"
            ).df()
            q3 = q3.reindex(columns=["period_start", *sensors])
            q3["period_start"] = q3["period_start"].dt.tz_convert(semantics.zone)
        else:
            q3 = pd.DataFrame({"period_start": pd.Series([], dtype="datetime64[us, UTC]")})
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
        pieces = con.execute(
            """SELECT sensor_id, period_start, day, month, kwh, band, price, cost_eur, as_of
               FROM pieces ORDER BY sensor_id, period_start, as_of"""
        ).df()
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
