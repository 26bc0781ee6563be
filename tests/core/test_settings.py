"""`--set section.key=value`: any setting for one command, checked against the defaults."""

from __future__ import annotations

import pytest

from meterlake.app.cli import _config, _parser, main
from meterlake.core.config import load_config
from meterlake.core.errors import MeterlakeError


def config_of(*argv: str):
    return _config(_parser().parse_args([*argv, "query", "q1"]))


def test_a_setting_reaches_its_section_with_its_type() -> None:
    settings = ["semantics.max_power_kw=5000", "spark.ui=true", "streams.bronze=1 second",
                "kafka.partitions=6"]  # fmt: skip
    config = config_of(*[arg for s in settings for arg in ("--set", s)])
    assert config.semantics.max_power_kw == 5000.0
    assert config.spark.ui is True
    assert config.streams.bronze == "1 second"
    assert config.kafka.partitions == 6


def test_entries_of_the_client_and_spark_tables() -> None:
    config = config_of("--set", "kafka.client.security.protocol=SASL_SSL",
                       "--set", "spark.conf.spark.sql.shuffle.partitions=8")  # fmt: skip
    assert config.kafka.client == {"security.protocol": "SASL_SSL"}
    assert config.spark.conf == {"spark.sql.shuffle.partitions": "8"}


def test_the_command_line_wins_over_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("METERLAKE_TOPIC", "from-env")
    assert load_config().kafka.topic == "from-env"
    assert load_config(settings=["kafka.topic=from-set"]).kafka.topic == "from-set"
    assert config_of("--set", "lake.root=elsewhere").lake.name == "elsewhere"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("semantics.max_powr_kw=1", "unknown key 'max_powr_kw' in [semantics]; known: zone"),
        ("semantics.max_power_kw=lots", "expected a number, not 'lots'"),
        ("spark.ui=3", "expected true or false, not 3"),
        ("kafka.partitions=2.5", "expected a whole number, not 2.5"),
        ("nosuch.key=1", "unknown section 'nosuch'; known: lake, kafka"),
        ("semantics.max_power_kw", "expected section.key=value"),
        ("kafka.client=x", "name the entry, kafka.client.NAME=value"),
    ],
)
def test_a_bad_setting_is_one_clear_line(setting: str, message: str, capsys) -> None:
    with pytest.raises(MeterlakeError) as caught:
        config_of("--set", setting)
    assert message in str(caught.value) and str(caught.value).startswith(f"--set {setting}")
    assert main(["--set", setting, "query", "q1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and message in err
