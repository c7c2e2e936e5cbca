"""Entity labels for ``logwarden evaluate`` and ``train --labels``: a two-column CSV file.

Accepted, with or without a header row: Loghub's ``BlockId,Label`` with ``Normal`` / ``Anomaly``, and
``entity,label`` with ``0`` / ``1`` (also ``true``/``false``, ``normal``/``anomalous``, any case). The first
column is the entity id exactly as Logwarden finds it (``entity.id``). A row that fits neither is an error
naming its line, never silently skipped: a mislabelled evaluation is worse than none.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pipeline.errors import LogwardenError

_VALUES = {"normal": False, "0": False, "false": False, "anomaly": True, "anomalous": True, "abnormal": True,
           "1": True, "true": True}


def read_labels(path: str | Path) -> dict[str, bool]:
    """Entity id -> abnormal."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LogwardenError(f"--labels: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LogwardenError(f"--labels: cannot read {path}: {exc}") from None
    labels: dict[str, bool] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2:
            raise LogwardenError(f"--labels {path}:{number}: expected 'entity,label', got {','.join(row)!r}")
        entity, value = row[0].strip(), row[1].strip().lower()
        if value not in _VALUES:
            if number == 1 and not labels:
                continue  # the header
            raise LogwardenError(f"--labels {path}:{number}: label {row[1]!r} is not one of Normal/Anomaly or 0/1")
        labels[entity] = _VALUES[value]
    if not labels:
        raise LogwardenError(f"--labels {path}: no labelled entities")
    return labels
