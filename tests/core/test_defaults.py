"""One set of defaults: conf/meterlake.toml, the file users read and edit, says
exactly what the dataclasses of meterlake.core.config say, every key and every value
(its type too), so neither can drift from the other unseen."""

from __future__ import annotations

import tomllib
from dataclasses import fields

import pytest

from meterlake.core.config import DEFAULT_CONF, SECTIONS, Config, _field_default, load_config

FILE = tomllib.loads(DEFAULT_CONF.read_text())


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_the_conf_file_names_every_setting_of_its_section(section: str) -> None:
    declared = {f.name for f in fields(SECTIONS[section])}
    assert set(FILE.get(section, {})) == declared


def test_the_conf_file_names_the_lake() -> None:
    assert set(FILE) == {"lake", *SECTIONS}
    assert set(FILE["lake"]) == {"root"}


@pytest.mark.parametrize(
    ("section", "key"), [(s, f.name) for s, cls in sorted(SECTIONS.items()) for f in fields(cls)]
)
def test_the_conf_file_gives_each_setting_its_default_value_and_type(
    section: str, key: str
) -> None:
    loaded = getattr(getattr(load_config(DEFAULT_CONF, environ={}), section), key)
    default = _field_default(next(f for f in fields(SECTIONS[section]) if f.name == key))
    assert loaded == default
    assert type(loaded) is type(default)


def test_the_conf_file_loads_to_the_default_config() -> None:
    assert load_config(DEFAULT_CONF, environ={}) == Config()
