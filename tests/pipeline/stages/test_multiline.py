"""Multi-line records: Java and Python traces become one record, orphans stay records, bounds hold, order kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import embedded as jobs
from pipeline.config import PipelineSettings
from pipeline.errors import LogwardenError
from pipeline.records import RawLine
from pipeline.stages.decoding import Decoder
from pipeline.stages.multiline import Joiner, _Record, joined

LAYOUT = "<Date> <Time> <Level> <Component>: <Content>"

JAVA = """\
2026-11-30 10:00:00,001 ERROR c.a.OrderService: request 42 failed
java.lang.IllegalStateException: payment backend refused order 42
\tat com.acme.orders.PaymentClient.charge(PaymentClient.java:118)
\tat com.acme.orders.OrderService.place(OrderService.java:57)
\tat java.base/java.lang.Thread.run(Thread.java:1583)
Caused by: java.net.SocketTimeoutException: Read timed out
\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:278)
\t... 12 more""".splitlines()

PYTHON = """\
2026-11-30 10:00:01,002 ERROR app.worker: job 7 crashed
Traceback (most recent call last):
  File "/srv/app/worker.py", line 88, in run
    result = handler(job)
  File "/srv/app/handlers.py", line 12, in handle
    return int(job.payload)
ValueError: invalid literal for int() with base 10: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/app/worker.py", line 91, in run
    raise JobFailed(job.id)
app.errors.JobFailed: 7""".splitlines()

PLAIN = ["2026-11-30 10:00:02,003 INFO app.worker: job 8 done"]


def lines(texts: list[str], key: bytes | None = None, start: int = 1) -> list[RawLine]:
    return [RawLine(t.encode(), "f", start + i, key) for i, t in enumerate(texts)]


def joiner(**kwargs: object) -> Joiner:
    return Joiner(Decoder(LAYOUT).starts_record, **kwargs)  # type: ignore[arg-type]


def test_java_and_python_traces_are_one_record_each() -> None:
    out = list(joined(lines(JAVA + PYTHON + PLAIN), joiner()))
    assert [r.lines for r in out] == [len(JAVA), len(PYTHON), 1]
    assert out[0].data.decode() == "\n".join(JAVA) and out[0].offset == 1 and out[0].end == len(JAVA)
    assert out[1].offset == len(JAVA) + 1 and out[1].data.decode().endswith("app.errors.JobFailed: 7")


def test_without_layout_timestamps_start_records() -> None:
    plain = [line.replace(",", ".", 1) for line in JAVA + PLAIN]
    out = list(joined(lines(plain), Joiner(Decoder().starts_record)))
    assert [r.lines for r in out] == [len(JAVA), 1]


def test_continuation_without_start_is_its_own_record() -> None:
    orphan = ["\tat com.acme.Foo.bar(Foo.java:1)", "\tat com.acme.Foo.baz(Foo.java:2)"]
    out = list(joined(lines(orphan + PLAIN), joiner()))
    assert [(r.offset, r.lines) for r in out] == [(1, 2), (3, 1)]  # nothing lost


def test_line_and_byte_bounds_hold() -> None:
    frames = [f"\tat com.acme.F.f(F.java:{i})" for i in range(10)]
    out = list(joined(lines(PLAIN + frames), joiner(max_lines=4)))
    assert [r.lines for r in out] == [4, 4, 3]
    j = joiner(max_bytes=120)
    out = list(joined(lines(PLAIN + frames), j))
    assert all(len(r.data) <= 120 for r in out) and sum(r.lines for r in out) == 11 and j.stats.cut >= 2


def test_start_regex() -> None:
    j = joiner(start=r"^\d{4}-")
    out = list(joined(lines(["2026 not a start", *PLAIN, "anything else", "and more"]), j))
    assert [r.lines for r in out] == [1, 3]
    with pytest.raises(LogwardenError, match="--multiline-start"):
        joiner(start="(")


def test_per_key_and_in_order_of_first_lines() -> None:
    a, b = b"pod-a", b"pod-b"
    j = joiner()
    feed = [RawLine(JAVA[0].encode(), "t/0", 10, a), RawLine(PLAIN[0].encode(), "t/0", 11, b),
            RawLine(JAVA[2].encode(), "t/0", 12, a), RawLine(PLAIN[0].encode(), "t/0", 13, b)]
    out: list[RawLine] = []
    for raw in feed:
        out += j.push(raw, now=0.0)
    # b's record at 11 is complete (13 started the next) but waits behind a's open record at 10.
    assert out == [] and j.held_offset() == 10
    out += j.expire(now=5.0, timeout=1.0)
    assert [(r.offset, r.lines) for r in out] == [(10, 2), (11, 1), (13, 1)]
    assert j.held_offset() is None and j.stats.expired == 1


def test_hostile_lines_do_not_break_joining() -> None:
    hostile = ["\xff\xfe bytes", " " * 100, "\tat " + "x" * 70000]
    raws = [RawLine(b"\xff\xfe\n", "f", 1)] + lines(PLAIN, start=2) + lines(hostile, start=3)
    out = list(joined(raws, joiner(max_bytes=65536)))
    assert sum(r.lines for r in out) == len(raws)


def _write(path: Path) -> None:
    blocks = []
    for i in range(120):
        blocks.append(f"2026-11-30 10:{i // 60:02d}:{i % 60:02d},000 INFO app.worker: job {i} done")
        if i % 10 == 3:
            blocks += [line.replace("10:00:00", f"10:{i // 60:02d}:{i % 60:02d}") for line in JAVA]
        if i % 10 == 7:
            blocks += PYTHON[1:]
    path.write_text("\n".join(blocks) + "\n")


def test_traces_in_a_file_have_one_template_each_and_count(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _write(log)
    settings = PipelineSettings(log_format=LAYOUT)
    rows, stats = jobs.parse([str(log)], settings)
    templates = [template for _, _, template in rows]
    # The plain lines (a Python trace joins the line before it) and one record per Java trace.
    assert len(templates) == 120 + 12
    assert stats.multiline_records == 24 and stats.multiline_lines == 12 * len(JAVA) + 12 * len(PYTHON)
    assert set(templates) == {"job <*> done", "request <*> failed"}  # from the first line only
    off, off_stats = jobs.parse([str(log)], PipelineSettings(log_format=LAYOUT, multiline=False))
    assert len(list(off)) == 120 + 12 * len(JAVA) + 12 * (len(PYTHON) - 1) and off_stats.multiline_records == 0


def test_sample_shows_the_whole_record(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _write(log)
    settings = PipelineSettings(log_format=LAYOUT, window="tumbling", window_size=10.0)
    docs, _ = jobs.detect([str(log)], settings, None, force=True)
    samples = [s for d in docs for s in d["log"]["samples"]]
    assert any(s.startswith(JAVA[0][:10]) and s.endswith("\t... 12 more") for s in samples)


class GeneralPathJoiner(Joiner):
    """Every line through ``_track`` and ``_release``: what ``push``'s shortcut (the one record held is handed on
    and the new one takes its place) must agree with."""

    def push(self, raw: RawLine, now: float = 0.0) -> list[RawLine]:
        key = raw.key or b""
        record = self._open.get(key)
        data = raw.data
        if record is not None and self._continues(record, data):
            if len(record.parts) < self.max_lines and record.size + 1 + len(raw.data) <= self.max_bytes:
                record.parts.append(raw.data)
                record.size += 1 + len(raw.data)
                record.end = raw.last_offset
                record.seen = now
                record.truncated = record.truncated or raw.truncated
                self._track(record, data)
                return self._release()
            self.stats.cut += 1
        if record is not None:
            record.complete = True
        record = _Record(raw, [raw.data], len(raw.data), raw.last_offset, now, raw.truncated,
                         json=raw.data[:1] == b"{" and self.start is None)
        self._track(record, data)
        self._queue.append(record)
        if record.json:
            record.complete = True
        else:
            self._open[key] = record
        return self._release()


PIECES = [*JAVA, *PYTHON, *PLAIN, "", "{\"message\": \"x\"}", "Traceback (most recent call last):", "  indented",
          "ValueError: bad", "java.lang.Error: x", "... 3 more"]


@settings(max_examples=200, deadline=None)
@given(picks=st.lists(st.tuples(st.integers(0, len(PIECES) - 1), st.sampled_from([None, b"a", b"b"])), max_size=60),
       max_lines=st.sampled_from([2, 5, 500]), expire_at=st.integers(0, 60))
def test_shortcut_agrees_with_the_general_path(picks: list[tuple[int, bytes | None]], max_lines: int,
                                               expire_at: int) -> None:
    fast, plain = joiner(max_lines=max_lines), GeneralPathJoiner(Decoder(LAYOUT).starts_record, max_lines=max_lines)
    for i, (piece, key) in enumerate(picks):
        raw = RawLine(PIECES[piece].encode(), "f", i + 1, key)
        assert fast.push(raw, now=float(i)) == plain.push(raw, now=float(i))
        assert fast.held_offset() == plain.held_offset()
        if i == expire_at:
            assert fast.expire(float(i), 3.0) == plain.expire(float(i), 3.0)
    assert fast.flush() == plain.flush()
    assert fast.stats == plain.stats
