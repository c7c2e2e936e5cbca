"""`logwarden --help` starts quickly: no heavy library is imported until a command needs it."""

from __future__ import annotations

import resource
import subprocess
import sys

import click
import pytest

from pipeline.cli.app import COMMANDS, cli

HEAVY = ("sklearn", "skops", "scipy", "numpy", "plotly", "elasticsearch", "opensearchpy", "kafka", "drain3")


def imported_by(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipeline.cli", *args],
                          capture_output=True, text=True, check=True)
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def test_help_imports_no_heavy_library() -> None:
    modules = imported_by("--help")
    assert "pipeline.cli.app" in modules  # the measurement sees our own imports
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, heavy
    assert not any(m in modules for m in ("pipeline.cli.files", "pipeline.cli.train", "pipeline.embedded"))


def test_a_commands_help_imports_only_what_it_needs() -> None:
    modules = imported_by("models", "--help")
    assert "models.registry" in modules
    assert not {"plotly", "kafka", "elasticsearch", "sklearn", "skops"} & {m.split(".")[0] for m in modules}


def test_help_takes_under_half_a_second_of_cpu() -> None:
    """CPU time, not wall time: the test machine is shared, and CPU time is what start-up costs."""
    best = float("inf")
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    assert best < 0.5, best


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_summary_is_the_commands_own(name: str) -> None:
    command = cli.commands[name]
    assert isinstance(command, click.Command) and command.name == name
    for limit in (40, 60, 200):
        listed = click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)
        assert listed == command.get_short_help_str(limit)
