"""meterlake.core.failpoints: a pause only where its environment variable asks for one."""

from __future__ import annotations

from meterlake.core import failpoints


def test_a_failpoint_sleeps_only_when_its_variable_is_set(monkeypatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(failpoints.time, "sleep", slept.append)
    monkeypatch.delenv("METERLAKE_PAUSE_BETWEEN_SILVER_WRITES", raising=False)
    failpoints.pause("between_silver_writes")
    assert slept == []
    monkeypatch.setenv("METERLAKE_PAUSE_BETWEEN_SILVER_WRITES", "0.25")
    failpoints.pause("between_silver_writes")
    failpoints.pause("elsewhere")
    assert slept == [0.25]
