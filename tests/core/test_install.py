"""meterlake installed from its wheel (not editable): no conf/ beside it, and still its
default conf, tariff and log4j2 files, from the package data meterlake.conf."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

from meterlake.core.config import PROJECT_ROOT, Config, load_config

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
# What the installed meterlake finds, as JSON (it needs none of the dependencies).
PROBE = """
import json
from dataclasses import replace
from meterlake.core.config import CONF_DIR, load_config
from meterlake.core.session import LOG4J2, LOG4J2_VERBOSE
from meterlake.core.tariff import load_tariff

config = load_config()
load_tariff(config.semantics.tariff, config.semantics.zone)
print(json.dumps({
    "conf": str(CONF_DIR),
    "tariff": str(config.semantics.tariff),
    "log4j2": [LOG4J2.is_file(), LOG4J2_VERBOSE.is_file()],
    "lake": str(config.lake),
    "settings": repr(replace(config, semantics=replace(config.semantics, tariff=None))),
}))
"""


def without_tariff(config: Config) -> str:
    return repr(replace(config, semantics=replace(config.semantics, tariff=None)))


def code_packages() -> set[str]:
    roots = {name.split(".")[0] for name in PYPROJECT["packages"]}
    return {".".join(init.parent.relative_to(PROJECT_ROOT).parts)
            for root in roots for init in (PROJECT_ROOT / root).rglob("__init__.py")}


def test_the_wheel_lists_every_package_and_the_data_packages() -> None:
    data_only = set(PYPROJECT["package-data"])
    assert set(PYPROJECT["packages"]) == code_packages() | data_only
    assert PYPROJECT["package-dir"] == {"meterlake.conf": "conf"}


def test_the_installed_wheel_finds_its_default_conf(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: the build writes build/ and *.egg-info
    source.mkdir()
    for name in ["pyproject.toml", "README.md", *PYPROJECT["package-dir"].values(),
                 *{p.split(".")[0] for p in PYPROJECT["packages"]}]:
        path = PROJECT_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "maven"))
        else:
            shutil.copy(path, source / name)
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith("METERLAKE_")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(source), "--no-deps", "-w", str(tmp_path / "dist")],
                   check=True, env=env, cwd=tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    (wheel,) = (tmp_path / "dist").glob("meterlake-*.whl")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)],
                   check=True, env=env, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"  # no conf/ here either
    elsewhere.mkdir()
    probe = subprocess.run([str(python), "-c", PROBE], check=True, env=env, cwd=elsewhere,
                           capture_output=True, text=True)
    found = json.loads(probe.stdout)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    assert Path(found["conf"]) == site / "meterlake" / "conf"
    assert Path(found["tariff"]) == site / "meterlake" / "conf" / "tariff.toml"
    assert found["log4j2"] == [True, True]
    assert found["lake"] == "lake"  # relative: from the working directory
    assert found["settings"] == without_tariff(load_config(environ={}))  # the same conf/
    help_ = subprocess.run([str(venv / "bin" / "meterlake"), "--help"], env=env,
                           cwd=elsewhere, capture_output=True, text=True, check=True)
    assert "Streaming lakehouse" in help_.stdout
