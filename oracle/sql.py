"""The oracle's rules, as the DuckDB SQL statements oracle.reference runs in order
(see its docstring for what each step expresses)."""

HALF_HOUR_US = 30 * 60 * 1_000_000

_TS_SIMPLE = r"^\d{4}-\d{2}-\d{2} (?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d$"
_TS_ISO = (
    r"^(\d{4}-\d{2}-\d{2})[T ]((?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)(\.\d+)?"
    r"(Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?$"
)
_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_BLANK = r"[\s\p{Z}]*"
_CONTROL = r"[\x00-\x1f\x7f\x{80}-\x{9f}]"
_READING = "STRUCT(t BIGINT, e DOUBLE, n BIGINT)"

# 1. The file -> one row per line -> parsed fields -> rules 1-5 of the docs.
MACROS = [
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
READ = r"""
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

LINES = [
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
    SELECT line_no, sensor_id, t, energy AS e, repeat_us,
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
                          local_offset_us(c.zone, p.local_ts, h.o_prev, h.o_next)) AS t,
               -- a naive time of a repeated hour, read as its first occurrence (o_prev):
               -- how much later the wall clock shows it again
               CASE WHEN p.offset_min IS NULL AND h.o_prev > h.o_next
                         AND local_offset_us(c.zone, p.local_ts, h.o_prev, h.o_next) = h.o_prev
                         AND zone_offset_us(c.zone, p.local_ts::TIMESTAMPTZ
                                            - to_microseconds(h.o_next)) = h.o_next
                    THEN h.o_prev - h.o_next ELSE 0 END AS repeat_us
        FROM parsed p
        LEFT JOIN local_hours h ON h.lh = date_trunc('hour', p.local_ts)
        CROSS JOIN cfg c CROSS JOIN limits l
    )
    """,
    # The repeated hour's second pass (docs/semantics.md): a naive reading of the
    # repeated hour goes to the second occurrence when some valid reading of its
    # sensor shows a lower register at or after its first occurrence, within the two
    # passes; the lowest such register starts the second pass for that sensor and day.
    """
    CREATE OR REPLACE TABLE lines AS
    WITH amb AS (
        SELECT k.sensor_id, k.t // 86400000000 AS day_key, k.e,
               EXISTS (SELECT 1 FROM lines j
                       WHERE j.reason IS NULL AND j.sensor_id = k.sensor_id
                         AND j.line_no <> k.line_no AND j.t >= k.t
                         AND j.t < k.t + 2 * k.repeat_us AND j.e < k.e) AS behind
        FROM lines k WHERE k.reason IS NULL AND k.repeat_us > 0
    ), second AS (
        SELECT sensor_id, day_key, min(e) AS e_from FROM amb WHERE behind GROUP BY ALL
    ), placed AS (
        SELECT l.*, coalesce(l.repeat_us > 0 AND l.reason IS NULL AND l.e >= s.e_from, false)
                        AS later
        FROM lines l
        LEFT JOIN second s ON s.sensor_id = l.sensor_id AND s.day_key = l.t // 86400000000
    )
    SELECT line_no, sensor_id, CASE WHEN later THEN t + repeat_us ELSE t END AS t, e,
           CASE WHEN later THEN 0 ELSE repeat_us END AS repeat_us, batch, reason
    FROM placed
    """,
]

# 2. Rules 6-10, the fast path: LAG over judging order; `bad` readings go to
#    the walk.
VALID = """
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

WALK_PREPARE = [
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
WALK_STARTS = """
    CREATE TABLE walk_starts AS
    SELECT b.sensor_id, b.n AS h, b.prev_bad, coalesce(s.first_n, b.n) AS first_n
    FROM bad b LEFT JOIN skipped s ON s.sensor_id = b.sensor_id AND s.h = b.n
    WHERE b.prev_bad = 0 OR (s.complete AND s.first_n > b.prev_bad + $after)
"""

# The readings the walk may visit: the bad ones, the $after readings after
# each, and the extensions given to segments that ran out of readings; with
# the next bad reading after each and the skipped rows of each bad one.
WALK_ROWS = """
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

# The walk: the state machine of rules 6-11, one row per judged reading. All
# segments (from each walk start to the next one) advance together, one
# reading per segment and iteration. State: `acc`, the accepted readings
# within the lateness of the latest one plus the one before them, sorted by
# instant (acc[-1] is the latest accepted reading); `pos`, the reading judged
# last; `clean`, whether that reading is the latest accepted one. Clean: the
# good readings that follow are accepted by the fast path, so the walk jumps
# to the next bad reading, merging the skipped readings into `acc` (they all
# follow acc in time). Not clean: it judges the next reading. A segment stops
# at the next walk start (or when the readings it was given run out).
WALK = f"""
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
WALK_CHECK = """
    CREATE OR REPLACE TABLE walk_ends AS
    SELECT e.*, s.first_n, v.last,
           e.n >= s.first_n AS merge,
           NOT e.clean AND e.n < coalesce(e.seg_end - 1, v.last) AS short
    FROM (SELECT sensor_id, seg_end, arg_max(n, n) AS n, arg_max(clean, n) AS clean
          FROM walk GROUP BY sensor_id, seg_end) e
    JOIN (SELECT sensor_id, max(n) AS last FROM valid GROUP BY ALL) v USING (sensor_id)
    LEFT JOIN walk_starts s ON s.sensor_id = e.sensor_id AND s.h = e.seg_end
"""

WALK_MERGE = """
    DELETE FROM walk_starts s USING walk_ends e
    WHERE e.merge AND s.sensor_id = e.sensor_id AND s.h = e.seg_end
"""

# A segment that ran out of readings gets all of them up to its end.
WALK_EXTEND = """
    INSERT INTO walk_extension
    SELECT sensor_id, unnest(range(n + 1, coalesce(seg_end, last + 1))) AS n
    FROM walk_ends WHERE short
"""

NO_WALK = """
    CREATE OR REPLACE TABLE walk AS
    SELECT NULL::VARCHAR AS sensor_id, NULL::BIGINT AS n, NULL::VARCHAR AS reason,
           false AS decrease, NULL::BIGINT AS succ_n, false AS judged
    WHERE false
"""

# 3. Judgements: accepted readings and the quarantine (one row per event).
JUDGED = [
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
        SELECT v.line_no, v.sensor_id, v.t, v.e,
               CASE WHEN w.reason IN ('duplicate', 'conflicting_duplicate') AND l.repeat_us > 0
                    THEN 'ambiguous_time' ELSE coalesce(w.reason, 'counter_decrease') END
        FROM valid v JOIN walk w USING (sensor_id, n) JOIN lines l USING (line_no)
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
PIECES = [
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
           p.day, date_trunc('month', p.day)::DATE AS month, p.offset_us, pl.plan, t.band,
           t.price
    FROM (
        SELECT *,
               offset_us > least(
                   zone_offset_us(zone, make_timestamp(year(day), 1, 1, 0, 0, 0)::TIMESTAMPTZ),
                   zone_offset_us(zone, make_timestamp(year(day), 7, 1, 0, 0, 0)::TIMESTAMPTZ))
                   AS summer
        FROM (
            SELECT period_us, local_start::DATE AS day,
                   (hour(local_start) * 60 + minute(local_start)) // 30 AS slot,
                   CASE isodow(local_start) WHEN 6 THEN 'saturday' WHEN 7 THEN 'sunday'
                        ELSE 'weekday' END AS day_type,
                   epoch_us(local_start) - period_us AS offset_us, zone
            FROM (SELECT period_us, zone,
                         timezone(zone, make_timestamp(period_us)::TIMESTAMPTZ) AS local_start
                  FROM (SELECT DISTINCT period_us FROM raw_pieces), cfg)
        )
    ) p
    CROSS JOIN (SELECT DISTINCT plan FROM tariff) pl
    LEFT JOIN tariff t
        ON t.plan = pl.plan
       AND t.effective_from <= p.day AND (t.effective_until IS NULL OR p.day < t.effective_until)
       AND t.season = CASE WHEN p.summer THEN 'summer' ELSE 'winter' END
       AND t.day_type = p.day_type AND t.slot = p.slot
    """,
    # Each sensor's contracted plan: its override, else the default.
    """
    CREATE TABLE contracts AS
    SELECT s.sensor_id, coalesce(o.plan, d.plan) AS plan
    FROM (SELECT DISTINCT sensor_id FROM raw_pieces) s
    CROSS JOIN contract_default d
    LEFT JOIN contract_override o USING (sensor_id)
    """,
    """
    CREATE TABLE pieces AS
    SELECT r.sensor_id, p.period_start, p.day, p.month, r.kwh, p.band, p.price,
           r.kwh * p.price AS cost_eur, make_timestamp(r.as_of_us)::TIMESTAMPTZ AS as_of
    FROM raw_pieces r JOIN contracts c USING (sensor_id)
    JOIN periods p ON p.period_us = r.period_us AND p.plan = c.plan
    """,
]

# 5. Gold: one row per key, every month / day / period ever seen.
GOLD = {
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
    # Every piece priced under every plan, summed per sensor, month and plan.
    "month_plan_cost": """
        SELECT r.sensor_id, p.month, p.plan, sum(r.kwh * p.price) AS cost_eur,
               make_timestamp(max(r.as_of_us))::TIMESTAMPTZ AS as_of
        FROM raw_pieces r JOIN periods p USING (period_us)
        GROUP BY r.sensor_id, p.month, p.plan ORDER BY r.sensor_id, p.month, p.plan
    """,
}

# The clock and the views. Now = the latest as_of; the current day and month
# are its local date and month.
VIEW_PREPARE = [
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

VIEWS = {
    "q1": """SELECT sensor_id, month_kwh AS energy_kwh FROM view_sensors
             ORDER BY round(month_kwh, 9) DESC, sensor_id DESC""",
    "q2": """SELECT sensor_id, day_kwh AS energy_kwh FROM view_sensors
             ORDER BY round(day_kwh, 9) DESC, sensor_id DESC""",
    "q4": """SELECT sensor_id, day_cost AS cost_eur FROM view_sensors
             ORDER BY round(day_cost, 9) DESC, sensor_id DESC""",
    # The month so far under every plan; saving = the contract's cost - this plan's.
    "plans": """
        SELECT m.sensor_id, m.plan, m.cost_eur, m.plan = c.plan AS contracted,
               mine.cost_eur - m.cost_eur AS saving_eur
        FROM month_plan_cost m JOIN clock k ON m.month = k.month
        JOIN contracts c ON c.sensor_id = m.sensor_id
        JOIN month_plan_cost mine
          ON mine.sensor_id = m.sensor_id AND mine.month = m.month AND mine.plan = c.plan
        ORDER BY m.sensor_id, round(m.cost_eur, 9), m.plan""",
}
