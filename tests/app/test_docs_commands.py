"""The commands the README and the docs show are commands meterlake takes: every
`meterlake ...` line of their `sh` blocks parses with the CLI's own parser, and every
`make TARGET` they show is a target of the Makefile. (Running them needs the broker
and Spark: `make demo` and the end-to-end tests do that.)"""

from __future__ import annotations

import re
import shlex

import pytest

from meterlake.app.cli import _parser
from meterlake.core.config import PROJECT_ROOT

PAGES = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "bench" / "README.md",
         *sorted((PROJECT_ROOT / "docs").glob("*.md"))]  # fmt: skip
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)


def shown(program: str) -> list[tuple[str, list[str]]]:
    """(page, arguments) of every line of an sh block that runs `program`."""
    out = []
    for page in PAGES:
        for block in SH_BLOCK.findall(page.read_text()):
            for line in block.splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == [program]:
                    out.append((page.relative_to(PROJECT_ROOT).as_posix(), words[1:]))
    return out


MAKE_TARGETS = set(re.findall(r"^([a-z0-9-]+):", (PROJECT_ROOT / "Makefile").read_text(), re.M))


def test_the_pages_show_commands() -> None:
    readme = [args for page, args in shown("meterlake") if page == "README.md"]
    assert len(readme) >= 10


@pytest.mark.parametrize(("page", "args"), shown("meterlake"),
                         ids=lambda v: v if isinstance(v, str) else " ".join(v))  # fmt: skip
def test_a_shown_meterlake_command_parses(page: str, args: list[str]) -> None:
    try:
        _parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{page}: meterlake {' '.join(args)}: exit {exc.code}")


@pytest.mark.parametrize(("page", "args"), shown("make"),
                         ids=lambda v: v if isinstance(v, str) else " ".join(v))  # fmt: skip
def test_a_shown_make_target_exists(page: str, args: list[str]) -> None:
    targets = [a for a in args if "=" not in a and not a.startswith("-")]
    assert set(targets) <= MAKE_TARGETS, f"{page}: make {' '.join(args)}"

