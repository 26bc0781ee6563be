"""Failpoints: named places where the crash tests must be able to land a kill -9.

A failpoint does nothing unless its environment variable is set
(`METERLAKE_PAUSE_<NAME>` = seconds): it then sleeps there, which widens a moment
that otherwise lasts milliseconds. Silver's table writes are delta-rs commits a few
ms apart; tests/reliability/test_crash.py sets METERLAKE_PAUSE_BETWEEN_SILVER_WRITES
so that its kills aimed between them land there, and exactly-once is shown for that
moment too. Users never set one.
"""

from __future__ import annotations

import os
import time


def pause(name: str) -> None:
    """Sleep METERLAKE_PAUSE_<NAME> seconds if that is set."""
    seconds = os.environ.get(f"METERLAKE_PAUSE_{name.upper()}")
    if seconds:
        time.sleep(float(seconds))
