from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import LogwardenError
from pipeline.sources.labels import read_labels


@pytest.mark.parametrize("text", [
    "BlockId,Label\nblk_1,Normal\nblk_2,Anomaly\n",
    "entity,label\nblk_1,0\nblk_2,1\n",
    "blk_1,0\nblk_2,1\n",
    "\ufeffBlockId,Label\r\nblk_1,normal\r\n\r\nblk_2,ANOMALY\r\n",
])
def test_both_formats(tmp_path: Path, text: str) -> None:
    path = tmp_path / "l.csv"
    path.write_text(text, encoding="utf-8")
    assert read_labels(path) == {"blk_1": False, "blk_2": True}


@pytest.mark.parametrize(("text", "fragment"), [
    ("entity,label\n", "no labelled entities"),
    ("blk_1,0\nblk_2\n", ":2: expected"),
    ("blk_1,0\nblk_2,2\n", ":2: label '2'"),
])
def test_bad_files_name_the_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "l.csv"
    path.write_text(text)
    with pytest.raises(LogwardenError, match=fragment):
        read_labels(path)
