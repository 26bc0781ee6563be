"""Progress of long commands (`run --once`, `publish`): done of total, rate and ETA.

On a terminal one line redraws itself in place (a bar); anywhere else (a log
file, a pipe, CI) a plain line every EVERY_S seconds (the callers pass
`[progress] every_s` of the configuration), so logs stay readable.
The text comes from the pure functions at the top; `Progress` only decides
when to write it and how.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

EVERY_S = 10.0  # not a terminal: one plain line this often
REDRAW_S = 0.2  # a terminal: the bar is redrawn at most this often
BAR_WIDTH = 20
ETA_AFTER = 0.01  # the ETA shows once this share of the total is done


def rate(done: int, seconds: float) -> float | None:
    """Items per second so far; None before any time has passed."""
    return done / seconds if seconds > 0 else None


def eta(done: int, total: int | None, seconds: float) -> float | None:
    """Seconds left at the rate so far; None while the total is unknown or less than
    ETA_AFTER of it is done (a few rows early on say nothing about the rate)."""
    per_s = rate(done, seconds)
    if not total or not per_s or done < total * ETA_AFTER:
        return None
    return max(total - done, 0) / per_s


def duration(seconds: float) -> str:
    """'7 s', '1 min 05 s', '2 h 03 min'."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _amounts(done: int, total: int | None, seconds: float, unit: str) -> list[str]:
    per_s = rate(done, seconds)
    parts = [f"{done:,} {unit}" if total is None else f"{done:,} of {total:,} {unit}"]
    if total:
        parts[0] += f" ({min(done / total, 1.0):.0%})"
    parts.append(f"{per_s:,.0f} {unit}/s" if per_s is not None else f"- {unit}/s")
    if total is not None:
        left = eta(done, total, seconds)
        parts.append(f"ETA {duration(left)}" if left is not None else "ETA -")
    return parts


def status_line(label: str, done: int, total: int | None, seconds: float, unit: str) -> str:
    """One plain line: 'bronze: 290,783 of 456,762 rows (64%), 10,412 rows/s, ETA 16 s'."""
    return f"{label}: " + ", ".join(_amounts(done, total, seconds, unit))


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """'[#######.............]' for 0.35 of 20."""
    filled = round(max(0.0, min(fraction, 1.0)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _bar_tail(done: int, total: int, speed: str, left: str, unit: str) -> str:
    return "  ".join([f"{min(done / total, 1.0):4.0%}", f"{done:,}/{total:,} {unit}", speed, left])


def bar_line(
    label: str, done: int, total: int | None, seconds: float, unit: str, columns: int = 80
) -> str:
    """The terminal's line, cut to `columns` - 1 characters:
    'bronze [#############.......]  64%  290,783/456,762 rows  10,412/s  ETA 16 s'.
    The bar is BAR_WIDTH wide, or narrower on a narrow terminal (as fits the longest
    line of this label and total, so it does not change width as the numbers move)."""
    per_s = rate(done, seconds)
    speed = f"{per_s:,.0f}/s" if per_s is not None else "-/s"
    if not total:
        return "  ".join([label, f"{done:,} {unit}", speed])[: max(columns - 1, 0)]
    left = eta(done, total, seconds)
    until = f"ETA {duration(left)}" if left is not None else "ETA -"
    tail = _bar_tail(done, total, speed, until, unit)
    longest = _bar_tail(total, total, f"{total // 10:,}/s", "ETA 9 min 59 s", unit)
    width = min(BAR_WIDTH, columns - 1 - len(label) - len(longest) - 4)
    head = f"{label} {bar(done / total, width)} " if width >= 5 else f"{label} "
    return (head + tail)[: max(columns - 1, 0)]


@dataclass
class _Row:
    total: int | None
    done: int = 0
    seconds: float | None = None  # frozen once the row is final


class Progress:
    """Shows the counts of one or more rows (a label each: the layers caught up side by
    side) on `stream`: bars redrawn in place on a terminal, else a `status_line` per row
    every `every_s` seconds (default: EVERY_S). Rates and ETAs count from `started` (a
    `clock()` time; default: when the Progress was made); a row `update`d with
    `final=True` keeps its figures from then on, and once every row is final their
    lines are shown, however soon (a layer caught up in less than `every_s`). `write`
    prints a message line without breaking the bars; `close` (or leaving the `with`)
    erases them.
    """

    def __init__(
        self,
        totals: Mapping[str, int | None],
        unit: str = "rows",
        stream: TextIO | None = None,
        tty: bool | None = None,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        started: float | None = None,
    ) -> None:
        self.rows = {label: _Row(total) for label, total in totals.items()}
        self.unit = unit
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = EVERY_S if every_s is None else every_s
        self.clock = clock
        self.started = clock() if started is None else started
        self._shown_at: float | None = None
        self._drawn = 0  # lines of bars on the terminal now

    def _seconds(self, row: _Row, now: float) -> float:
        return row.seconds if row.seconds is not None else now - self.started

    def set_total(self, label: str, total: int) -> None:
        """A row's total, once it is known (a layer following another: when that one ended)."""
        self.rows[label].total = total

    def update(self, label: str, done: int, final: bool = False) -> None:
        row = self.rows[label]
        if row.seconds is not None:
            return
        now = self.clock()
        row.done = done
        if final:
            row.seconds = now - self.started
        if self.tty:
            if self._shown_at is None or now - self._shown_at >= REDRAW_S:
                self._draw(now)
        elif now - (self._shown_at if self._shown_at is not None else self.started) >= (
            self.every_s
        ) or all(shown.seconds is not None for shown in self.rows.values()):
            for name, shown in self.rows.items():
                seconds = self._seconds(shown, now)
                self.stream.write(status_line(name, shown.done, shown.total, seconds,
                                              self.unit) + "\n")
            self.stream.flush()
            self._shown_at = now

    def _draw(self, now: float) -> None:
        columns = shutil.get_terminal_size().columns
        lines = [bar_line(name, row.done, row.total, self._seconds(row, now), self.unit,
                          columns) for name, row in self.rows.items()]
        up = f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""
        self.stream.write("\r" + up + "\n".join(line + "\x1b[K" for line in lines))
        self.stream.flush()
        self._shown_at, self._drawn = now, len(lines)

    def _erase(self) -> None:
        if self._drawn:
            up = f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""
            self.stream.write("\r" + up + "\x1b[J")
            self.stream.flush()
            self._drawn = 0

    def write(self, message: str, file: TextIO | None = None) -> None:
        """A line of its own (on `file`, default the progress stream), the bars after it."""
        self._erase()
        out = file or self.stream
        out.write(message + "\n")
        out.flush()
        if self.tty and self._shown_at is not None:
            self._draw(self.clock())

    def close(self) -> None:
        self._erase()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
