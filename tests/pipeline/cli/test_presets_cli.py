"""``logwarden presets``, ``--preset`` and ``--log-format auto`` from the command line."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli.app import cli
from pipeline.stages.presets import PRESETS


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_presets_lists_every_preset_with_an_example() -> None:
    result = run("presets")
    assert result.exit_code == 0
    for name in PRESETS:
        assert name in result.output
    assert '"GET /api/users/42 HTTP/1.1" 200' in result.output


RFC3164 = ["<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
           "<13>Oct 11 22:14:16 mymachine su: 'su root' failed for lonvick on /dev/pts/9",
           "\udcff definitely not syslog"]


def _rows(output: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(output)))


def test_preset_and_auto_parse_syslog(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_bytes("\n".join(RFC3164).encode("utf-8", "surrogateescape") + b"\n")
    given = run("parse", str(log), "--preset", "rfc3164")
    auto = run("parse", str(log), "--log-format", "auto")
    assert given.exit_code == 0 and auto.exit_code == 0
    assert "read as preset rfc3164 (picked by --log-format auto)" in auto.output
    assert "1 unmatched" in auto.output and "1 invalid UTF-8" in auto.output  # counted, not fatal
    templates = [row["template"] for row in _rows(given.stdout)]
    assert templates[0] == templates[1] == "'su root' failed for lonvick on <*>"


def test_unknown_preset_is_one_line_error(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("x\n")
    result = CliRunner().invoke(cli, ["parse", str(log), "--preset", "ngnix"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "logwarden: error: --preset: unknown preset 'ngnix' (did you mean 'nginx'?); `logwarden presets` lists them"]
