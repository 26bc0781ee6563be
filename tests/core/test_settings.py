"""`--set section.key=value`: any setting for one command, checked against the defaults;
and the one precedence: command line > environment > conf file > defaults."""

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


# --------------------------------------------------------------------------- precedence


def test_one_precedence_option_then_set_then_environment_then_file(tmp_path) -> None:
    conf = tmp_path / "meterlake.toml"
    conf.write_text('[kafka]\ntopic = "from-file"\n')
    environ = {"METERLAKE_TOPIC": "from-env"}
    assert load_config(conf, environ={}).kafka.topic == "from-file"
    assert load_config(conf, environ=environ).kafka.topic == "from-env"
    set_ = ["kafka.topic=from-set"]
    assert load_config(conf, set_, environ=environ).kafka.topic == "from-set"
    option = {"kafka.topic": "from-option"}
    assert load_config(conf, set_, option, environ=environ).kafka.topic == "from-option"
    assert load_config(conf, set_, {"kafka.topic": None}, environ).kafka.topic == "from-set"
    assert load_config(conf, environ={"METERLAKE_TOPIC": ""}).kafka.topic == "from-file"
    assert load_config(tmp_path / "meterlake.toml", environ={}).kafka.partitions == 3  # default


def test_the_command_line_flags_are_options_of_the_same_rule(monkeypatch) -> None:
    monkeypatch.setenv("METERLAKE_LAKE", "from-env")
    assert config_of().lake.name == "from-env"
    assert config_of("--set", "lake.root=from-set").lake.name == "from-set"
    assert config_of("--set", "lake.root=from-set", "--lake", "flag").lake.name == "flag"
    assert config_of("-v").spark.verbose is True
    assert config_of().spark.verbose is False


def test_each_variable_of_the_environment_reaches_its_setting() -> None:
    environ = {"METERLAKE_LAKE": "/data/lake", "METERLAKE_TOPIC": "true",
               "METERLAKE_BOOTSTRAP": "b1:9092,b2:9092",
               "METERLAKE_KAFKA_SASL_JAAS_CONFIG": 'x required username="u" password="p";',
               "METERLAKE_PROGRESS_EVERY_S": "1.5"}  # fmt: skip
    config = load_config(environ=environ)
    assert str(config.lake) == "/data/lake"
    assert config.kafka.topic == "true"  # text as it is, not TOML's true
    assert config.kafka.bootstrap == "b1:9092,b2:9092"
    assert config.kafka.client["sasl.jaas.config"] == 'x required username="u" password="p";'
    assert config.progress.every_s == 1.5


def test_a_bad_variable_is_one_clear_line() -> None:
    with pytest.raises(MeterlakeError) as caught:
        load_config(environ={"METERLAKE_PROGRESS_EVERY_S": "soon"})
    assert str(caught.value) == "METERLAKE_PROGRESS_EVERY_S: expected a number, not 'soon'"
