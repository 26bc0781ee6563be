"""meterlake: a streaming lakehouse for residential energy meters."""
from __future__ import annotations

__version__ = "0.1.0"
