"""A directory or a glob of rotated log files, put in the order their lines were written.

**Time order means logrotate's order, read from the names**, not modification times: ``cp``, ``rsync``
without ``-t``, a tarball or an object store all reset mtimes, while the names logrotate gives keep their
meaning. For each log (its name without rotation suffix and compression suffix):

1. numbered rotations, highest number first: ``app.log.3.gz``, ``app.log.2.gz``, ``app.log.1`` (logrotate's
   default: ``.1`` is the newest rotation);
2. dated rotations (``dateext``), oldest date first: ``app.log-20261129.gz``, ``app.log-20261130``;
3. the live file last: ``app.log``.

Different logs in one directory are read one after another, by name. Paths listed one by one on the command
line keep the order given (the user chose it); only what Logwarden expands itself is ordered: a directory
(its regular, non-hidden files, not recursively) and a quoted glob pattern (``'/var/log/app.log*'``; a
pattern the shell expanded arrives as a list in the shell's alphabetical order, which puts ``app.log`` before
its rotations).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence

from pipeline.errors import InputError
from pipeline.sources.compression import SUFFIXES

STDIN = "-"
_NUMBERED = re.compile(r"^(?P<base>.+)\.(?P<n>\d{1,6})$")
_DATED = re.compile(r"^(?P<base>.+?)[-_.](?P<date>(?:19|20)\d\d-?[01]\d-?[0-3]\d(?:[-_]?\d{2,6})?)$")
_GLOB = re.compile(r"[*?\[]")


def rotation_key(path: str) -> tuple[str, int, int, str]:
    """Sort key putting the rotations of one log in the order they were written (module docstring)."""
    name = os.path.basename(path)
    lower = name.lower()
    for suffix in SUFFIXES:
        if lower.endswith(suffix):
            name = name[: -len(suffix)]
            break
    dated = _DATED.match(name)
    if dated:
        return dated.group("base"), 1, 0, re.sub(r"\D", "", dated.group("date"))
    numbered = _NUMBERED.match(name)
    if numbered:
        return numbered.group("base"), 0, -int(numbered.group("n")), ""
    return name, 2, 0, ""


def in_time_order(paths: Sequence[str]) -> list[str]:
    return sorted(paths, key=lambda p: (os.path.dirname(p), rotation_key(p), p))


def expand(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The files to read: each directory and glob pattern replaced by its files in time order."""
    out: list[str] = []
    for item in paths:
        path = os.fspath(item)
        if path == STDIN:
            out.append(path)
        elif os.path.isdir(path):
            files = [entry.path for entry in os.scandir(path)
                     if not entry.name.startswith(".") and entry.is_file()]
            if not files:
                raise InputError(f"{path}: a directory without log files")
            out.extend(in_time_order(files))
        elif not os.path.lexists(path) and _GLOB.search(path):
            matches = [p for p in glob.glob(path) if os.path.isfile(p)]
            if not matches:
                raise InputError(f"{path}: no file matches this pattern")
            out.extend(in_time_order(matches))
        else:
            out.append(path)
    return out
