from __future__ import annotations

from meterlake.cli import main

raise SystemExit(main())
