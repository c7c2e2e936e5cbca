"""The one per-record chain on hostile input: odd text, odd times, stages that raise."""

from __future__ import annotations

import json
import time

import pytest

from benchmarks.loghub import LOGHUB_LAYOUTS
from pipeline.config import PipelineSettings
from pipeline.records import RawLine, TemplateMatch
from pipeline.stages import presets
from pipeline.stages.chain import RecordChain
from pipeline.stages.templates import TemplateMiner
from tests.fakes import utc
from tests.pipeline.stages.test_decoding import _Deadline, _hostile_lines

NOW = utc(2026, 12, 1, 12)
SETTINGS = PipelineSettings(entity_regex=r"host (?P<host>\w+)", window="session", session_gap=60.0,
                            max_session=3600.0, allowed_lateness=5.0)


def json_line(ts: float | str | None, host: str = "a", message: str | None = None) -> bytes:
    doc: dict[str, object] = {"message": message or f"host {host} served a request"}
    if ts is not None:
        doc["@timestamp"] = ts
    return json.dumps(doc).encode()


class Recorder:
    """The worker's replay hook, reduced to remembering what it was told."""

    def __init__(self) -> None:
        self.done: list[int] = []

    def before(self, offset: int, watermark: float, clock: float | None) -> None:
        pass

    def should_skip(self, key: tuple[str, str], offset: int) -> bool:
        return False

    def done_(self, offset: int) -> None:
        self.done.append(offset)


def chain(replay: Recorder | None = None, settings: PipelineSettings = SETTINGS) -> RecordChain:
    miner = TemplateMiner()
    hook = None
    if replay is not None:
        hook = type("Hook", (), {"before": replay.before, "should_skip": replay.should_skip,
                                 "done": lambda _self, offset: replay.done_(offset)})()
    return RecordChain(settings, miner.learn, replay=hook)


def feed(c: RecordChain, lines: list[bytes], arrival: float = NOW) -> list:  # type: ignore[type-arg]
    return [c.add(RawLine(data, "logs/0", offset, None, arrival)) for offset, data in enumerate(lines)]


def test_a_lone_surrogate_in_json_is_replaced_and_counted() -> None:
    c = chain()
    line = b'{"@timestamp": "2026-12-01T10:00:00Z", "message": "host a said \\ud800 then \\ud83d\\ude00"}'
    [step] = feed(c, [line])
    assert "invalid_utf8" in step.record.flags and c.decoder.stats.invalid_utf8 == 1
    assert step.record.message == "host a said \ufffd then \U0001f600"  # a valid pair stays one character
    assert step.windowed and [w.entity_id for w in c.flush()] == ["a"]


def test_a_stage_that_raises_flags_the_record_and_the_stream_goes_on() -> None:
    def tag(message: str) -> TemplateMatch:
        if "poison" in message:
            raise RuntimeError("miner exploded")
        return TemplateMatch("T1", "host <*> served a request")

    recorder = Recorder()
    c = chain(recorder)
    c.tag = tag
    steps = feed(c, [json_line(NOW - 30, "a"), json_line(NOW - 29, "b", "host b poison"), json_line(NOW - 28, "c")])
    bad = steps[1]
    assert bad.record.flags == ("stage_error",) and not bad.windowed and not bad.no_entity
    assert bad.record.fields["error.message"] == "RuntimeError: miner exploded"
    assert recorder.done == [0, 1, 2]  # the replay hook hears about every record, failed or not
    assert sorted(w.entity_id for w in c.flush()) == ["a", "c"]
    assert c.decoder.stats.stage_error == 1


@pytest.mark.parametrize("future", ["2099-01-01T00:00:00Z", 1e25, "NaN"])
def test_a_far_future_or_unrepresentable_time_does_not_move_the_watermark(future: object) -> None:
    c = chain()
    lines = [json_line(NOW - 100 + i, "a") for i in range(3)]
    lines.append(json_line(future, "b") if future != "NaN" else b'{"@timestamp": NaN, "message": "host b x"}')
    lines += [json_line(NOW - 90 + i, "a") for i in range(3)]
    steps = feed(c, lines)
    assert "bad_timestamp" in steps[3].record.flags
    assert c.decoder.stats.bad_timestamp == 1
    assert c.windower.watermark == NOW - 88 - 5  # moved only by plausible times
    assert c.late_records == 0  # nothing after the bad record is late
    windows = c.flush()
    assert sorted((w.entity_id, w.count) for w in windows) == [("a", 6), ("b", 1)]
    assert all(w.end < NOW for w in windows)


def test_skew_is_measured_against_arrival_so_old_history_with_gaps_is_fine() -> None:
    c = chain()
    day = 86400.0
    old = utc(2008, 11, 9)
    steps = feed(c, [json_line(old, "a"), json_line(old + 40 * day, "a")])  # a quiet month in a 2008 log
    assert not any("bad_timestamp" in s.record.flags for s in steps)
    assert c.windower.watermark == old + 40 * day - 5
    c = chain(settings=SETTINGS.merged({"max_clock_skew": "1h"}))
    [step] = feed(c, [json_line(NOW + 7200, "a")])
    assert "bad_timestamp" in step.record.flags


def test_a_record_without_an_arrival_time_is_checked_against_the_clock() -> None:
    """A Kafka record with no timestamp (-1, an old message format) or 0 has no arrival time: a 2099 line in it
    must still not freeze the partition's watermark."""
    c = chain()
    steps = feed(c, [json_line(NOW - 10, "a"), json_line("2099-01-01T00:00:00Z", "b"), json_line(NOW - 9, "a")],
                 arrival=0.0)
    assert "bad_timestamp" in steps[1].record.flags
    assert c.windower.watermark == NOW - 9 - 5
    assert not any("bad_timestamp" in s.record.flags for s in (steps[0], steps[2]))


def test_an_untimed_first_record_does_not_make_the_history_after_it_late() -> None:
    c = chain()
    old = utc(2008, 11, 9)
    lines = [json_line(None, "z")] + [json_line(old + i, "a") for i in range(5)]
    feed(c, lines, arrival=NOW)
    assert c.late_records == 0
    assert c.windower.watermark == old + 4 - 5
    windows = {w.entity_id: w for w in c.flush()}
    assert windows["a"].count == 5 and not windows["a"].late
    assert windows["z"].start == NOW  # untimed before any time: its arrival, in a window of its own


def test_an_untimed_record_after_timed_ones_joins_their_time() -> None:
    c = chain()
    old = utc(2008, 11, 9)
    feed(c, [json_line(old, "a"), json_line(None, "a"), json_line(old + 1, "a")], arrival=NOW)
    [window] = c.flush()
    assert (window.count, window.start, window.end) == (3, old, old + 1)


def test_a_partition_chain_stamps_its_stream_on_every_window() -> None:
    c = RecordChain(SETTINGS, TemplateMiner().learn, origin="logs/3")
    feed(c, [json_line(NOW - 10, "a"), json_line(NOW - 9, "b")])
    assert {w.stream for w in c.flush()} == {"logs/3"}
    assert {w.stream for w in (chain().flush())} == set()


# --- poison input through the whole chain (issue 13) -----------------------------------------------------


def test_json_nested_too_deep_is_not_a_stage_error() -> None:
    c = RecordChain(SETTINGS, TemplateMiner().learn, json_mode="strict")
    deep = b'{"message": "host z x", "a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    steps = feed(c, [json_line(NOW - 2, "a"), deep, json_line(NOW - 1, "a")])
    assert steps[1].record.flags == ("not_json",) and not steps[1].windowed
    assert c.stage_errors == 0 and c.decoder.stats.not_json == 1
    assert [(w.entity_id, w.count) for w in c.flush()] == [("a", 2)]


def test_a_1970_record_is_late_in_its_own_window_and_leaves_the_others_alone() -> None:
    old = utc(2008, 11, 9)
    lines = [json_line(old + i, "a") for i in range(3)] + [json_line(0, "b"), json_line(1, "a")]
    lines += [json_line(old + 3 + i, "a") for i in range(3)]
    c = chain()
    steps = feed(c, lines)
    assert not any("bad_timestamp" in s.record.flags for s in steps)  # a time a date can hold: not rejected
    assert c.windower.watermark == old + 5 - 5  # never moved back
    late = [(w.entity_id, w.start, w.count, w.late) for s in steps for w in s.closed]
    assert late == [("b", 0.0, 1, True), ("a", 1.0, 1, True)]  # windowed, flagged late, closed at once
    assert [(w.entity_id, w.start, w.count, w.late) for w in c.flush()] == [("a", old, 6, False)]
    assert c.late_records == 2


CHAIN_LINE_BOUND_S = 0.5  # one 64 KiB line through decode, entities, masking and template matching


@pytest.mark.parametrize("system", sorted(LOGHUB_LAYOUTS))
def test_hostile_lines_go_through_the_chain_of_every_loghub_layout_within_the_bound(system: str) -> None:
    """The shapes that make matching slow, against the layout's preset, with an entity so every one is
    windowed and template-matched (the worker's and detect's path: a trained miner's ``match``)."""
    settings = PipelineSettings().merged(presets.apply(f"loghub-{system.lower()}", {})).merged(
        {"entity_regex": r"(?P<word>[a-z]+)"})
    miner = TemplateMiner()
    for line in ("a b c", "x: y [z]", "hello world 42"):
        miner.learn(line)
    c = RecordChain(settings, miner.match)
    lines = _hostile_lines(LOGHUB_LAYOUTS[system])
    with _Deadline(30):
        for shape, line in lines.items():
            start = time.perf_counter()
            data = line.encode("utf-8", "surrogatepass") + b" zz"  # an entity at the end: every line is windowed
            step = c.add(RawLine(data, "logs/0", 0, None, NOW))
            assert time.perf_counter() - start < CHAIN_LINE_BOUND_S, shape
            assert "stage_error" not in step.record.flags, (shape, step.record.fields.get("error.message"))
            assert step.windowed, shape
    assert c.stage_errors == 0
