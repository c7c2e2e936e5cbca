"""The HDFS renderer writes real-looking HDFS lines whose templates give back exactly the input sessions."""

from __future__ import annotations

import csv
import hashlib
import os
import random
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.hdfs_render import (
    EVENTS,
    MAX_SESSION_SECONDS,
    Session,
    anomalous_count,
    load_source,
    main,
    mix,
    read_labels,
    render,
    sessions_dir,
    write_labels,
    write_log,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(?P<date>\d{6}) (?P<time>\d{6}) (?P<pid>\d+) (?P<level>INFO|WARN|ERROR) "
                  r"(?P<component>dfs\.[\w$]+): (?P<content>.+)$")
BLOCK = re.compile(r"blk_-?\d+")


def _require_sessions() -> Path:
    root = sessions_dir()
    if not (root / "HDFS_templates.csv").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"HDFS session data missing under CI: {root}")
        pytest.skip(f"HDFS session data not found: {root}")
    return root


@pytest.fixture(scope="module")
def templates() -> dict[int, re.Pattern[str]]:
    """HDFS_templates.csv as full-match regexes (``<*>`` = anything)."""
    out: dict[int, re.Pattern[str]] = {}
    with (_require_sessions() / "HDFS_templates.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            pattern = ".*".join(re.escape(part) for part in row["EventTemplate"].split("<*>"))
            # The one paraphrase in the template file: the real E28 line says "doesn't".
            pattern = pattern.replace(re.escape("does not belong to any file."),
                                      r"(?:does\ not|doesn't)\ belong\ to\ any\ file\.")
            out[int(row["EventId"].removeprefix("E"))] = re.compile(pattern, re.S)
    return out


def _event_of(content: str, templates: dict[int, re.Pattern[str]]) -> int:
    hits = [eid for eid, pattern in templates.items() if pattern.fullmatch(content)]
    assert len(hits) == 1, f"{content!r} matches templates {hits}"
    return hits[0]


def _per_block(lines: list[str], templates: dict[int, re.Pattern[str]]) -> dict[str, list[int]]:
    blocks: dict[str, list[int]] = defaultdict(list)
    for line in lines:
        match = LINE.match(line)
        assert match, f"not an HDFS line: {line!r}"
        content = match["content"]
        named = set(BLOCK.findall(content))
        assert len(named) == 1, f"line names {len(named)} blocks: {line!r}"
        blocks[named.pop()].append(_event_of(content, templates))
    return blocks


@pytest.fixture(scope="module")
def real_sessions() -> list[Session]:
    _require_sessions()
    normal, anomalous = load_source("train")
    return mix(normal, anomalous, 300, 0.03, random.Random(5))


def test_every_event_id_renders_to_its_own_template(templates: dict[int, re.Pattern[str]]) -> None:
    assert sorted(EVENTS) == sorted(templates) == list(range(1, 31))
    rendered = render([([eid] * 4, 0) for eid in range(1, 31)], seed=3)
    per_block = _per_block(rendered.lines, templates)
    assert [per_block[b] for b in rendered.block_ids] == [[eid] * 4 for eid in range(1, 31)]


def test_real_sessions_come_back_from_the_templates(real_sessions, templates) -> None:
    rendered = render(real_sessions, seed=11)
    assert len(rendered.lines) == sum(len(seq) for seq, _ in real_sessions)
    assert len(set(rendered.block_ids)) == len(real_sessions)
    per_block = _per_block(rendered.lines, templates)
    assert set(per_block) == set(rendered.block_ids)
    for blk, (sequence, _label) in zip(rendered.block_ids, real_sessions, strict=True):
        assert per_block[blk] == list(sequence)
    assert rendered.labels == [label for _, label in real_sessions]


@settings(max_examples=40, deadline=None)
@given(sessions=st.lists(st.lists(st.integers(1, 30), min_size=1, max_size=40), min_size=1, max_size=15),
       seed=st.integers(0, 2**32))
def test_any_sessions_round_trip(templates: dict[int, re.Pattern[str]], sessions: list[list[int]],
                                 seed: int) -> None:
    rendered = render([(s, 0) for s in sessions], seed=seed)
    per_block = _per_block(rendered.lines, templates)
    assert [per_block[b] for b in rendered.block_ids] == sessions


def test_deterministic_for_a_seed(real_sessions) -> None:
    first = render(real_sessions, seed=1)
    assert render(real_sessions, seed=1) == first
    other = render(real_sessions, seed=2)
    assert other.lines != first.lines and other.block_ids != first.block_ids


def test_stream_is_time_ordered_and_blocks_stay_within_a_session_gap(real_sessions) -> None:
    rendered = render(real_sessions, seed=4, start=datetime(2008, 11, 9, 20, 35, 18))
    stamps = [datetime.strptime(line[:13], "%y%m%d %H%M%S") for line in rendered.lines]
    assert stamps == sorted(stamps)
    assert stamps[0] >= datetime(2008, 11, 9, 20, 35, 18)
    times: dict[str, list[datetime]] = defaultdict(list)
    for line, stamp in zip(rendered.lines, stamps, strict=True):
        times[BLOCK.findall(line)[0]].append(stamp)
    for seen in times.values():
        assert (seen[-1] - seen[0]).total_seconds() <= MAX_SESSION_SECONDS + 1
    starts = sorted(seen[0] for seen in times.values())
    assert starts[-1] > starts[0]  # sessions start over a period, not all at once
    first_block_end = times[rendered.block_ids[0]][-1]
    assert any(s < first_block_end for s in starts[1:]), "sessions should interleave"


def test_anomaly_rate_is_honoured() -> None:
    _require_sessions()
    normal, anomalous = load_source("test")
    assert (len(normal), len(anomalous)) == (6000, 6000)
    assert anomalous_count(6000, 0.03) == 186 and anomalous_count(4854, 0.03) == 150
    drawn = mix(normal, anomalous, 970, 0.03, random.Random(0))
    assert len(drawn) == 1000 and sum(label for _, label in drawn) == 30
    with pytest.raises(ValueError, match="asked for"):
        mix(normal, anomalous, 7000, 0.03, random.Random(0))
    with pytest.raises(ValueError, match="rate"):
        anomalous_count(10, 1.5)


def test_unknown_event_id_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown HDFS event id 31"):
        render([([5, 31], 0)], seed=0)


def test_labels_and_log_files(tmp_path: Path, real_sessions) -> None:
    rendered = render(real_sessions, seed=9)
    write_log(rendered, tmp_path / "x.log")
    write_labels(rendered, tmp_path / "x.csv")
    assert (tmp_path / "x.log").read_text().splitlines() == rendered.lines
    assert read_labels(tmp_path / "x.csv") == dict(zip(rendered.block_ids, rendered.labels, strict=True))


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _require_sessions()
    out, labels = tmp_path / "s.log", tmp_path / "s.csv"
    args = ["--normal", "97", "--seed", "3", "--source", "test", "--out", str(out), "--labels", str(labels)]
    assert main(args) == 0
    assert sum(read_labels(labels).values()) == 3 and len(read_labels(labels)) == 100
    assert main(["--normal", "99999", "--out", str(out)]) == 2
    assert "asked for 99999 normal" in capsys.readouterr().err


def test_bundled_sample_is_what_the_readme_command_renders(tmp_path: Path) -> None:
    _require_sessions()
    sample = REPO_ROOT / "examples" / "hdfs_sample.log"
    assert sample.stat().st_size < 3_000_000
    out, labels = tmp_path / "s.log", tmp_path / "s.csv"
    assert main(["--normal", "970", "--anomalous-rate", "0.03", "--seed", "42", "--out", str(out),
                 "--labels", str(labels)]) == 0
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (out, labels)]
    bundled = [hashlib.sha256(p.read_bytes()).hexdigest()
               for p in (sample, REPO_ROOT / "examples" / "hdfs_sample_labels.csv")]
    assert digest == bundled
