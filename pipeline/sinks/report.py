"""Writers for job results: JSON lines, the terminal summary table and the HTML report."""

from __future__ import annotations

import html
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


def write_report(path: str, docs: list[dict[str, Any]], stats: dict[str, Any], title: str) -> None:
    """Write :func:`render_report` to ``path`` (atomically: see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(render_report(docs, stats, title), encoding="utf-8")


def render_report(docs: list[dict[str, Any]], stats: dict[str, Any], title: str) -> str:
    """A self-contained HTML page: run statistics and every anomalous window with its explanation."""
    esc = html.escape
    rows = []
    for doc in docs:
        expl = "".join(
            f"<li><code>{esc(e['id'])}</code> {esc(_reason(e))}: {esc(e['template'])}</li>" for e in doc["templates"]
        )
        samples = "".join(f"<li><code>{esc(s)}</code></li>" for s in doc["log"]["samples"])
        reason = doc["anomaly"].get("reason_text")
        decided = f"<p>decided by {esc(str(reason))}</p>" if reason else ""
        rows.append(
            f"<tr><td>{doc['anomaly']['score']:.3f}</td><td>{esc(str(doc['entity']['id']))}</td>"
            f"<td>{esc(doc['window']['start'])}<br>{esc(doc['window']['end'])}</td><td>{doc['log']['count']}</td>"
            f"<td>{decided}<ul>{expl}</ul>"
            f"<details><summary>sample lines</summary><ul>{samples}</ul></details></td></tr>"
        )
    stat_items = "".join(f"<li>{esc(str(k))}: {esc(str(v))}</li>" for k, v in stats.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:4px;vertical-align:top}}code{{font-size:90%}}</style></head><body>
<h1>{esc(title)}</h1><ul>{stat_items}</ul>
<table><tr><th>score</th><th>entity</th><th>window</th><th>lines</th><th>why</th></tr>{''.join(rows)}</table>
</body></html>"""
    return page
