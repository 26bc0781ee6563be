"""The oracle: a batch reference implementation of the semantics, in DuckDB SQL,
sharing no code with the pipeline; tests and the bench check the pipeline against it
(see oracle.reference)."""

from oracle.reference import OracleResult, compute_answers, tariff_rows

__all__ = ["OracleResult", "compute_answers", "tariff_rows"]
