"""Writers for job results: JSON lines and the terminal summary table (the HTML report: ``html_report``)."""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pipeline.errors import LogwardenError


@contextmanager
def open_output(path: str | None, newline: str | None = None):  # type: ignore[no-untyped-def]
    """Open ``path`` for writing text (``-`` or None: stdout), with a one-line error on failure.

    A file is written as a temporary file next to it and renamed over ``path`` only when the ``with`` block
    ends without an exception: an interrupted run (Ctrl-C, a truncated ``.gz``, a bad line) leaves an existing
    file as it was, never empty or half-written. The temporary file is created on entry, so an unwritable
    destination fails before any input is read. Stdout streams as before.
    """
    if path is None or path == "-":
        yield sys.stdout
        return
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline=newline) as handle:
        yield handle


@contextmanager
def atomic_path(path: str) -> Iterator[Path]:
    """A fresh temporary path in ``path``'s directory, renamed onto ``path`` when the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``path`` is untouched.
    The new file gets the mode an ordinary ``open`` would give (the existing file's, else 0666 & ~umask).
    """
    target = Path(path)
    if target.is_dir():
        raise LogwardenError(f"cannot write {path}: it is a directory")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise LogwardenError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LogwardenError(f"cannot write {path}: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(handle: IO[str], doc: dict[str, Any]) -> None:
    handle.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _reason(entry: dict[str, Any]) -> str:
    """``3x (exp 0.02, in 1.2% of training windows)`` or ``NEW 2x``."""
    if entry["new"]:
        return f"NEW {entry['observed']}x"
    share = entry.get("share")
    where = f", in {share:.1%} of training windows" if isinstance(share, int | float) else ""
    return f"{entry['observed']}x (exp {entry['expected']}{where})"


def summary_table(top: Iterable[dict[str, Any]], width: int = 120) -> str:
    """A compact, human table of the top anomalies with their strongest explanation lines."""
    lines = [f"{'score':>7}  {'entity':<28} {'window start':<24} {'lines':>6}  why"]
    for doc in top:
        why = []
        for entry in doc["templates"][:2]:
            why.append(f"{_reason(entry)} {entry['template']}")
        first = why[0] if why else "unusual mix of templates"
        lines.append(
            f"{doc['anomaly']['score']:>7.3f}  {_short(str(doc['entity']['id']), 28):<28} "
            f"{doc['window']['start']:<24} {doc['log']['count']:>6}  {_short(first, max(20, width - 72))}"
        )
        for extra in why[1:]:
            lines.append(f"{'':>7}  {'':<28} {'':<24} {'':>6}  {_short(extra, max(20, width - 72))}")
    return "\n".join(lines)
