"""The gold tables kept open for `meterlake serve`: answers per Delta version.

`query` opens a table, reads it and closes it, which costs more than the query
(bench metric 6). A server answers many requests on the same versions, so:

- each gold table is opened once (delta-rs) and registered in its own DuckDB
  connection with its view; that connection stays open between requests;
- whether a table moved is looked up at most every `check_every_s` (delta-rs
  reads only the log entries after the loaded version); only then is its
  connection rebuilt and its new commits added to the known history;
- an answer is computed once per (view, table version) and kept: a Delta
  version never changes, so a cached answer is the answer;
- time travel (`version=` / `as_of=`) picks the version from the known
  history with `meterlake.read.travel.choose_version`, like `query --version /
  --as-of`, and opens that version only for a cache miss;
- the event time each version stood at (`at=`, the timeline) is read once per
  version from its files' statistics (`meterlake.read.answers.stood_at`) and kept.

The rows come from `meterlake.read.answers.answer`, the function behind `meterlake
query`, so the API serves exactly what the command prints. Nothing here writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from meterlake.core.catalog import GOLD_TABLES
from meterlake.core.config import Config
from meterlake.core.errors import MeterlakeError
from meterlake.read.answers import answer, stood_at, version_standing_at
from meterlake.read.clock import parse_instant, zone_of
from meterlake.read.connection import connect_tables
from meterlake.read.result import Result
from meterlake.read.travel import Commit, choose_version, commits_of
from meterlake.read.views import VIEW_TABLES, cost_by_band_sql

log = logging.getLogger(__name__)

CACHED_ANSWERS = 512
# What the kept answers may hold, in estimated bytes: a 100,000-meter q3 is about
# 40 MB as a matrix, its q1 about 15 MB as Python rows. The newest answer is always kept.
CACHED_BYTES = 200_000_000
BYTES_PER_ROW_CELL = 64  # a Python value in a row tuple
BYTES_PER_MATRIX_CELL = 9  # a float64 and its present flag (q3, q3_long)


class BadTravel(MeterlakeError):
    """A version or time to travel to that the table does not have, or cannot be read."""


class NotYet(MeterlakeError):
    """The table a view reads has not been created yet."""


@dataclass(frozen=True)
class Bands:
    """Today's cost split by tariff band: rows (sensor_id, band, price, cost_eur)."""

    rows: list[tuple[str, str, float, float]]
    day_cost_version: int
    silver_version: int | None  # None: no silver at that time


@dataclass(frozen=True)
class Moment:
    """An instant of event time (UTC) the gold tables' answers stood at, and the version
    of each table standing then."""

    at: datetime
    versions: dict[str, int]


@dataclass
class _OpenTable:
    name: str
    delta: DeltaTable
    commits: list[Commit]
    con: duckdb.DuckDBPyConnection
    reader: DeltaTable  # loads earlier versions for their event time (`stood`)
    stood: dict[int, datetime | None] = field(default_factory=dict)  # version -> stood_at

    @property
    def version(self) -> int:
        return self.commits[-1].version


def weight(value: object) -> int:
    """About how many bytes a kept answer (or band split) holds."""
    if isinstance(value, Result):
        if value.cells is not None:
            return value.cells.values.size * BYTES_PER_MATRIX_CELL
        return len(value.rows) * max(1, len(value.columns)) * BYTES_PER_ROW_CELL
    if isinstance(value, Bands):
        return len(value.rows) * 4 * BYTES_PER_ROW_CELL
    return BYTES_PER_ROW_CELL


@dataclass
class _Cache:
    """A small LRU of computed values keyed by what they depend on (immutable versions),
    at most `size` of them and `budget` bytes (`weight`)."""

    size: int = CACHED_ANSWERS
    budget: int = CACHED_BYTES
    items: OrderedDict = field(default_factory=OrderedDict)
    weights: dict = field(default_factory=dict)

    def get(self, key: tuple, compute: Callable[[], object]) -> object:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = compute()
        self.items[key] = value
        self.weights[key] = weight(value)
        while len(self.items) > self.size or (
            len(self.items) > 1 and sum(self.weights.values()) > self.budget
        ):
            oldest, _ = self.items.popitem(last=False)
            del self.weights[oldest]
        return value


class LiveGold:
    """The gold tables of one lake, open, with the answers of the versions asked for."""

    def __init__(self, config: Config, check_every_s: float = 0.5,
                 cached_answers: int = CACHED_ANSWERS) -> None:
        self.config = config
        self.zone = zone_of(config)
        self.check_every_s = check_every_s
        self._lock = threading.RLock()
        self._tables: dict[str, _OpenTable] = {}
        self._checked = -float("inf")
        self._cache = _Cache(cached_answers)  # 0: every request queries (the benchmark)

    # ---------------------------------------------------------------- versions

    def versions(self) -> dict[str, int]:
        """The live version of each gold table created so far (refreshed if due)."""
        with self._lock:
            self._refresh()
            return {name: t.version for name, t in self._tables.items()}

    def _refresh(self) -> None:
        if time.monotonic() - self._checked < self.check_every_s:
            return
        for name in GOLD_TABLES:
            opened = self._tables.get(name)
            try:
                if opened is None:
                    self._open(name)
                else:
                    self._update(opened)
            except (DeltaError, MeterlakeError, duckdb.Error) as exc:  # retried next time
                log.warning("cannot refresh %s: %s", name, exc)
        self._checked = time.monotonic()

    def _open(self, name: str) -> None:
        path = str(self.config.table_path(name))
        if not DeltaTable.is_deltatable(path):
            return
        delta = DeltaTable(path)
        con = connect_tables(self.config, {name: delta})
        self._tables[name] = _OpenTable(name, delta, commits_of(delta), con, DeltaTable(path))

    def _update(self, opened: _OpenTable) -> None:
        """Load the table's new commits, if any; the answers' connection and the known
        history move together, only once both are ready (a failure leaves the old ones
        and is retried at the next check)."""
        opened.delta.update_incremental()
        now, known = opened.delta.version(), opened.version
        if now == known:
            return
        log.info("%s moved from version %d to %d", opened.name, known, now)
        new = [c for c in commits_of(opened.delta, limit=now - known)
               if known < c.version <= now]
        con = connect_tables(self.config, {opened.name: opened.delta})
        old, opened.con = opened.con, con
        opened.commits = opened.commits + new
        old.close()

    def timeline(self, limit: int) -> list[Moment]:
        """The newest `limit` moments of event time, oldest first: each instant (UTC) the
        gold tables' answers stood at (after `replay --step`, one per step: the tables'
        commits of a step are one moment) and the version every gold table had then
        (absent: not created yet). Only each table's newest `limit` commits are looked
        at, and no moment before the oldest of them (its version then is not known)."""
        with self._lock:
            self._refresh()
            current: dict[str, int] = {}  # the versions before any answer (empty)
            events: list[tuple[datetime, str, int]] = []
            since: datetime | None = None
            for name, opened in self._tables.items():
                newest = opened.commits[-limit:]
                for commit in newest:
                    stood = self._stood(opened, commit.version)
                    if stood is None:
                        current[name] = commit.version
                    else:
                        events.append((stood, name, commit.version))
                first = self._stood(opened, newest[0].version)
                if len(newest) < len(opened.commits) and first is not None:
                    since = first if since is None else max(since, first)
            moments: dict[datetime, dict[str, int]] = {}
            for stood, name, version in sorted(events):
                current[name] = version
                moments[stood] = dict(current)
            return [Moment(at, then) for at, then in moments.items()
                    if since is None or at >= since][-limit:]

    def _stood(self, opened: _OpenTable, version: int) -> datetime | None:
        """The event time `version` of the table stood at (`stood_at`), read once. One
        handle loads the versions, a few milliseconds each when they come in order."""
        if version not in opened.stood:
            try:
                opened.reader.load_as_version(version)
            except DeltaError as exc:
                raise BadTravel(f"cannot read {opened.name} version {version}: {exc}") from None
            opened.stood[version] = stood_at(opened.reader)
        return opened.stood[version]

    # ---------------------------------------------------------------- answers

    def _table(self, name: str) -> _OpenTable:
        self._refresh()
        opened = self._tables.get(name)
        if opened is None:
            raise NotYet(
                f"gold table {name} not found under {self.config.lake}: "
                "run `meterlake run --once` first"
            )
        return opened

    def _choose(self, opened: _OpenTable, version: int | None, as_of: str | None,
                at: str | None = None) -> int:
        """The version to read: `version`, the one current at the instant `as_of`, the
        one standing at the event time `at`, or the live one."""
        try:
            if at is not None:
                if version is not None or as_of is not None:
                    raise MeterlakeError("give one of version, as_of and at, not two")
                return version_standing_at(
                    opened.name, [c.version for c in opened.commits],
                    lambda v: self._stood(opened, v), parse_instant(at, self.zone), self.zone)
            when = parse_instant(as_of, self.zone) if as_of is not None else None
            return choose_version(opened.name, opened.commits, version, when, self.zone)
        except MeterlakeError as exc:
            raise BadTravel(str(exc)) from None

    def answer(self, view: str, version: int | None = None, as_of: str | None = None,
               at: str | None = None) -> Result:
        """The sorted answer of `view` (a `Result`), live or at a version, a time or
        an event time."""
        if view not in VIEW_TABLES:
            raise MeterlakeError(f"unknown view {view!r}; known: {', '.join(VIEW_TABLES)}")
        with self._lock:
            opened = self._table(VIEW_TABLES[view])
            chosen = self._choose(opened, version, as_of, at)
            return self._cache.get(
                ("answer", view, chosen), lambda: self._compute(opened, view, chosen)
            )

    def written_at(self, table: str, at: str) -> str:
        """The instant (`as_of` text) that `table`'s version standing at event time `at`
        was written: the other tables as they were then."""
        with self._lock:
            opened = self._table(table)
            chosen = self._choose(opened, None, None, at)
            return commit_time(next(c.timestamp for c in opened.commits if c.version == chosen))

    def _compute(self, opened: _OpenTable, view: str, version: int) -> Result:
        if version == opened.version:
            return answer(opened.con, self.config, view, version)
        with closing(self._connect_at(opened.name, version)) as con:
            return answer(con, self.config, view, version)

    def _connect_at(self, name: str, version: int) -> duckdb.DuckDBPyConnection:
        try:
            delta = DeltaTable(str(self.config.table_path(name)), version=version)
        except DeltaError as exc:
            raise BadTravel(f"cannot read {name} version {version}: {exc}") from None
        return connect_tables(self.config, {name: delta})

    def bands(self, version: int | None = None, as_of: str | None = None,
              at: str | None = None) -> Bands:
        """q4's cost per sensor split by tariff band, from silver as it was when day_cost
        wrote the version shown (gold holds totals only; see `cost_by_band_sql`)."""
        with self._lock:
            opened = self._table("day_cost")
            chosen = self._choose(opened, version, as_of, at)
            return self._cache.get(("bands", chosen), lambda: self._split(opened, chosen))

    def _split(self, opened: _OpenTable, version: int) -> Bands:
        written = next(c.timestamp for c in opened.commits if c.version == version)
        path = str(self.config.table_path("silver"))
        if not DeltaTable.is_deltatable(path):
            return Bands([], version, None)
        silver = DeltaTable(path)
        try:
            silver.load_as_version(written.astimezone(UTC))
        except DeltaError:  # silver has no version that old
            return Bands([], version, None)
        day_cost = DeltaTable(str(self.config.table_path("day_cost")), version=version)
        tables = {"silver": silver, "day_cost": day_cost}
        with closing(connect_tables(self.config, tables)) as con:
            rows = con.execute(cost_by_band_sql(self.config.semantics.zone)).fetchall()
        return Bands([tuple(r) for r in rows], version, silver.version())

    def close(self) -> None:
        with self._lock:
            for opened in self._tables.values():
                opened.con.close()
            self._tables.clear()


def commit_time(moment: datetime) -> str:
    """A commit's instant as the `as_of` text that travels back to exactly that commit."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
