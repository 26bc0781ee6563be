"""silver.reasons: the one home of each reason code, held to the docs, the config, the
code that decides it and the oracle's own SQL."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from dataclasses import fields
from pathlib import Path

from meterlake.core.config import PROJECT_ROOT, SemanticsConf
from silver import reasons
from silver.reasons import REASONS

CODES = [r.code for r in REASONS]


def test_the_codes_are_the_numbered_rules_of_the_semantics_page_in_their_order() -> None:
    page = (PROJECT_ROOT / "docs" / "semantics.md").read_text()
    assert re.findall(r"^ ?\d+\. `([a-z_]+)`:", page, re.MULTILINE) == CODES


def test_each_setting_is_a_semantics_setting() -> None:
    known = {f.name for f in fields(SemanticsConf)}
    for reason in REASONS:
        assert set(reason.settings) <= known, reason.code


def test_each_code_is_decided_where_the_registry_says() -> None:
    """The function exists, and its module names the reason's constant."""
    constants = {value.code: name for name, value in vars(reasons).items()
                 if isinstance(value, reasons.Reason)}
    for reason in REASONS:
        module_name, function = reason.decided_in.rsplit(".", 1)
        module = importlib.import_module(module_name)
        assert callable(getattr(module, function)), reason.decided_in
        assert constants[reason.code] in inspect.getsource(module), reason.decided_in


def test_no_silver_module_writes_a_code_of_its_own() -> None:
    """Every code in silver comes from the registry: no other module has it as a string."""
    for path in sorted(Path(reasons.__file__).parent.glob("*.py")):
        if path.name == "reasons.py":
            continue
        tree = ast.parse(path.read_text())
        literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
        assert not literals & set(CODES), path.name


def test_the_oracle_writes_the_same_codes_in_its_own_sql() -> None:
    """The oracle shares no code with silver: its SQL writes every code of the registry
    but malformed_json (it reads text lines, never JSON), and every code-like literal
    in it (snake_case, the column names of its header check aside) is one of them."""
    sql = (PROJECT_ROOT / "oracle" / "sql.py").read_text()
    quoted = set(re.findall(r"'([a-z]+(?:_[a-z]+)*)'", sql))
    assert set(CODES) - {"malformed_json"} <= quoted
    assert {w for w in quoted if "_" in w} - {"sensor_id"} <= set(CODES)
