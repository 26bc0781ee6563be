from __future__ import annotations

from meterlake.app.cli import console

console()
