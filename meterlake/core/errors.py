"""Expected failures: the CLI prints their message on one line, no traceback."""
from __future__ import annotations


class MeterlakeError(Exception):
    """A failure the user can act on (bad file, broker down, bad SQL, ...)."""
