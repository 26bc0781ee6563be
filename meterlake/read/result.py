"""The rows of a query as the read side hands them on: to the CLI's formats
(meterlake.app.output), to the page's API, to the report and to pandas."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from meterlake.read.halfhours import HalfHours

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Result:
    """Rows of a query, ready to print or to hand to pandas.

    `decimals` and `notes` only shape the human table: `decimals` rounds every
    float (None: by column name, kWh 3, EUR 4, else 6); `notes` are footnotes.
    A view's answer also names its table's `version` and its `as_of` ("now").
    """

    columns: list[str]
    rows: Sequence[tuple]  # q3, q3_long: made on demand from a matrix (meterlake.read.halfhours)
    decimals: int | None = None
    notes: tuple[str, ...] = ()
    version: int | None = None
    as_of: datetime | None = None
    cells: HalfHours | None = None  # q3, q3_long: the matrix their rows are made from

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame.from_records(self.rows, columns=self.columns)
