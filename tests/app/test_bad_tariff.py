"""A bad tariff file through the command line: every command that starts something
(`run`, `replay`, `serve`) prints one line naming the file and the key, exits 1 and
starts nothing (no lake, no topic, no server). The loader's own cases, key by key, are
in tests/silver/test_plans.py; `run` in a fresh process there too."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterlake.app.cli import main
from meterlake.core.net import free_port
from tests.silver.test_plans import broken

CASES = {
    "unknown plan in a contract": (
        '# "S03" = "erse-bi-semanal"', '"S03" = "erse-bi-semanl"',
        "contracts.meters.'S03': unknown plan 'erse-bi-semanl'"),
    "a band of the cycle without a price": (
        "ponta = 0.2400\n", "",
        "plans.su-tri-diario.prices[0]: no price for band 'ponta' of cycle 'tri-diario'"),
    "a half hour of a cycle without a band": (
        'super_vazio = ["02:00-06:00"]', 'super_vazio = ["02:00-05:30"]',
        "cycles.tri-diario.winter: 05:30 has no band"),
    "overlapping effective dates": (
        'effective_until = "2025-01-01"', 'effective_until = "2025-02-01"',
        "plans.erse-simples.prices[1].effective_from: 2025-01-01 overlaps"),
    "a price below zero": (
        "cheias = 0.1741", "cheias = -0.1741",
        "plans.su-tri-diario.prices[0].cheias: price -0.1741 must be a number >= 0"),
    "a bill term below zero": (
        "vat_standard = 0.23", "vat_standard = -0.23", "bill.vat_standard: -0.23 must be"),
}  # fmt: skip
COMMANDS = {
    "run": ["run", "--once"],
    "replay": ["replay", "{readings}"],
    "serve": ["serve", "--port", "{port}"],
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_tariff_file_is_one_line_and_nothing_starts(tmp_path: Path, capsys, case, command):
    old, new, message = CASES[case]
    path = broken(tmp_path, old, new)
    readings = tmp_path / "readings.txt"
    readings.write_text("2024-02-05 09:00:00;A;1.0\n")
    lake = tmp_path / "lake"
    args = [a.format(readings=readings, port=free_port()) for a in COMMANDS[command]]
    # an unreachable broker: were the check missing, nothing real would be published to
    code = main(["--lake", str(lake), "--bootstrap", "127.0.0.1:1",
                 "--set", f"semantics.tariff={path}", *args])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith(f"meterlake: error: {path}: ") and message in line
    assert out == ""  # no "replaying ..." nor "serving ..."
    assert not lake.exists()
