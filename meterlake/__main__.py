from __future__ import annotations

from meterlake.app.cli import main

raise SystemExit(main())
