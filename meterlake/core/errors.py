"""Expected failures: the CLI prints their message on one line, no traceback."""
from __future__ import annotations


class MeterlakeError(Exception):
    """A failure the user can act on (bad file, broker down, bad SQL, ...)."""


def one_line(exc: BaseException) -> str:
    """DuckDB's message on one line, without the `LINE 1: ...` excerpt and its caret."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [
        line for line in lines
        if line and not line.startswith("LINE ") and set(line) != {"^"}
    ]
    return " ".join(kept) or type(exc).__name__
