"""Decoding: logparser formats (all eight Loghub layouts), time handling, JSON lines, flags and counts."""

from __future__ import annotations

import csv
import re
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from benchmarks.loghub import LOG_FORMATS, LOGHUB_LAYOUTS
from pipeline.errors import FormatError, LogwardenError
from pipeline.records import RawLine
from pipeline.sources.files import read_lines
from pipeline.stages.decoding import Decoder, DecodeStats, LogFormat, check_format_matches
from tests.fakes import raw_line, raw_lines, utc

HDFS = LOG_FORMATS["HDFS"]
HDFS_LINE = "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38 terminating"


# --- LogFormat ------------------------------------------------------------------------------------------


def test_format_fields_and_message() -> None:
    message, fields = LogFormat(HDFS).match(HDFS_LINE) or ("", {})
    assert message == "PacketResponder 1 for block blk_38 terminating"
    assert fields == {"Date": "081109", "Time": "203615", "Pid": "148", "Level": "INFO",
                      "Component": "dfs.DataNode$PacketResponder"}


def test_format_spaces_are_flexible_and_lines_stripped() -> None:
    fmt = LogFormat("<Level> <Content>")
    assert fmt.match("  WARN    disk   almost full  \t") == ("disk   almost full", {"Level": "WARN"})


def test_format_escapes_and_optional_group() -> None:
    linux = LogFormat(LOG_FORMATS["Linux"])
    with_pid = linux.match("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown")
    without = linux.match("Jun 15 04:06:18 combo kernel: Linux version 2.6.5")
    assert with_pid == ("check pass; user unknown", {"Month": "Jun", "Date": "14", "Time": "15:16:01",
                                                     "Level": "combo", "Component": "sshd(pam_unix)",
                                                     "PID": "19939"})
    assert without is not None and "PID" not in without[1] and without[0] == "Linux version 2.6.5"
    apache = LogFormat(r"\[<Time>\] \[<Level>\] <Content>")
    assert apache.match("[Sun Dec 04 04:47:44 2005] [error] mod_jk child") == (
        "mod_jk child", {"Time": "Sun Dec 04 04:47:44 2005", "Level": "error"})
    assert apache.match("Sun Dec 04 04:47:44 2005 [error] mod_jk child") is None


def test_format_dotted_names_and_content_not_last() -> None:
    fmt = LogFormat(r"<host.name> <Content> \(<trace.id>\)")  # text outside <...> is regex
    assert fmt.match("web-1 GET /index done (abc123)") == (
        "GET /index done", {"host.name": "web-1", "trace.id": "abc123"})


@pytest.mark.parametrize(("fmt", "message"), [
    ("", "empty"),
    ("<Date> <Time> <Message>", "no <Content>"),
    ("<Content> <Content>", "twice"),
    (r"<Date> \S+ <Content>", r"'\\S' is regex syntax"),
    ("<Date> <Content>\\", "lone backslash"),
    ("<Date><Content>", "nothing between <Date> and <Content>"),
    (r"<Date>( <Content>)?", "<Content> cannot be inside an optional part"),
])
def test_format_errors(fmt: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        LogFormat(fmt)
    with pytest.raises(LogwardenError):
        Decoder(fmt)


# --- the eight Loghub-2k systems ---------------------------------------------------------------------

# strptime layouts of each system's time fields, used only to check the auto-detected times independently.
TRUTH_TIME = {
    "HDFS": (("Date", "Time"), "%y%m%d %H%M%S"),
    "Hadoop": (("Date", "Time"), "%Y-%m-%d %H:%M:%S,%f"),
    "Spark": (("Date", "Time"), "%y/%m/%d %H:%M:%S"),
    "Zookeeper": (("Date", "Time"), "%Y-%m-%d %H:%M:%S,%f"),
    "BGL": (("Timestamp",), "epoch"),
    "Linux": (("Month", "Date", "Time"), "%Y %b %d %H:%M:%S"),
    "Apache": (("Time",), "%a %b %d %H:%M:%S %Y"),
    "OpenSSH": (("Date", "Day", "Time"), "%Y %b %d %H:%M:%S"),
}


def truth_time(system: str, row: dict[str, str], year: int) -> float:
    names, layout = TRUTH_TIME[system]
    text = " ".join(row[name] for name in names)
    if layout == "epoch":
        return float(text)
    if layout.startswith("%Y ") and "%Y" not in layout[3:]:
        text = f"{year} {text}"
    return datetime.strptime(text, layout).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize("system", sorted(LOG_FORMATS))
def test_loghub_formats_decode_every_line(loghub_2k: Path, system: str) -> None:
    decoder = Decoder(LOG_FORMATS[system], default_year=2005)
    records = [decoder.decode(raw) for raw in read_lines([str(loghub_2k / system / f"{system}_2k.log")])]
    with (loghub_2k / system / f"{system}_2k.log_structured.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(records) == len(rows) == 2000
    assert decoder.stats == DecodeStats(lines=2000, matched=2000)  # no unmatched, no bad timestamps
    for record, row in zip(records, rows, strict=True):
        assert record.flags == ()
        assert record.message == row["Content"]
        assert record.fields == {k: v for k, v in row.items() if k in record.fields}
        assert set(record.fields) >= {k for k in LogFormat(LOG_FORMATS[system]).names if row.get(k)} - {"Content"}
        assert record.timestamp == pytest.approx(truth_time(system, row, 2005), abs=1e-6)
    assert decoder.time_layout is not None


def test_loghub_format_against_other_system_is_unmatched(loghub_2k: Path) -> None:
    decoder = Decoder(LOG_FORMATS["HDFS"])
    records = [decoder.decode(raw) for raw in read_lines([str(loghub_2k / "Apache" / "Apache_2k.log")])]
    # logparser layouts are loose (lazy fields between spaces): Apache lines with ": " and enough spaces do fit
    # HDFS's layout, but their "Date Time" is no time, so none of them gets a made-up timestamp.
    assert decoder.stats.unmatched > 1900 and decoder.stats.matched == decoder.stats.bad_timestamp
    assert all(r.timestamp is None for r in records)
    assert all(r.message == r.raw for r in records if r.flags == ("unmatched",))


# --- timestamps in formats --------------------------------------------------------------------------


def test_explicit_time_format_and_bad_timestamp_kept() -> None:
    decoder = Decoder(HDFS, "%y%m%d %H%M%S")
    good = decoder.decode_text(HDFS_LINE)
    bad = decoder.decode_text(HDFS_LINE.replace("203615", "256199"))
    assert good.timestamp == utc(2008, 11, 9, 20, 36, 15) and good.flags == ()
    assert bad.timestamp is None and bad.flags == ("bad_timestamp",) and bad.message == good.message
    assert decoder.stats.bad_timestamp == 1 and decoder.stats.matched == 2
    assert decoder.time_layout == "%y%m%d %H%M%S"


def test_explicit_time_fields() -> None:
    decoder = Decoder("<Level> <When> <Content>", "%Y-%m-%dT%H:%M:%S", time_fields=["When"])
    assert decoder.decode_text("INFO 2024-02-29T10:00:00 leap day").timestamp == utc(2024, 2, 29, 10)
    with pytest.raises(FormatError, match="'Nope' is not a field"):
        Decoder(HDFS, time_fields=["Nope"])


@pytest.mark.parametrize("bad", ["no directives", "%Y-%Q", "%"])
def test_invalid_time_format(bad: str) -> None:
    with pytest.raises(FormatError, match="--time-format"):
        Decoder(HDFS, bad)


def test_auto_detect_locks_on_first_layout() -> None:
    decoder = Decoder("<Date> <Time> <Content>")
    first = decoder.decode_text("2015-10-18 18:01:47,978 started")
    other = decoder.decode_text("18/10/2015 18:01:48 a different layout later")
    assert first.timestamp == pytest.approx(utc(2015, 10, 18, 18, 1, 47) + 0.978)
    assert other.timestamp is None and other.flags == ("bad_timestamp",)
    assert decoder.time_layout == "iso8601"


def test_auto_detect_gives_up_after_detect_lines() -> None:
    decoder = Decoder("<Date> <Content>", detect_lines=3)
    for i in range(5):
        assert decoder.decode_text(f"someday{i} hello").flags == ("bad_timestamp",)
    assert decoder.decode_text("2015-10-18T18:01:47 late").timestamp is None  # no longer detecting
    assert decoder.time_layout is None and decoder.stats.bad_timestamp == 6


def test_format_without_time_fields_has_no_time_and_no_flag() -> None:
    record = Decoder("<Level>: <Content>").decode_text("ERROR: disk full")
    assert record.timestamp is None and record.flags == () and record.fields == {"Level": "ERROR"}


# --- flags: unmatched, invalid UTF-8, truncated -----------------------------------------------------


def test_unmatched_line_is_kept_whole_and_counted() -> None:
    decoder = Decoder(HDFS)
    record = decoder.decode(raw_line("java.lang.NullPointerException", "app.log", 7, arrival=5.0))
    assert record.message == "java.lang.NullPointerException" and record.flags == ("unmatched",)
    assert (record.origin, record.offset, record.arrival, record.timestamp) == ("app.log", 7, 5.0, None)
    assert decoder.stats.unmatched == 1 and decoder.stats.lines == 1


def test_invalid_utf8_replaced_and_flagged() -> None:
    decoder = Decoder(HDFS)
    record = decoder.decode(raw_line(HDFS_LINE.encode().replace(b"block", b"bl\xffck")))
    assert "bl\ufffdck" in record.message and record.flags == ("invalid_utf8",)
    assert record.timestamp == utc(2008, 11, 9, 20, 36, 15)
    assert decoder.stats.invalid_utf8 == 1 and decoder.stats.matched == 1


def test_truncated_flag_and_cut_character_is_not_invalid() -> None:
    decoder = Decoder()
    cut = "déjà".encode()[:2]  # b"d\xc3": the size cap split the é
    record = decoder.decode(raw_line(cut, truncated=True))
    assert record.message == "d" and record.flags == ("truncated",)
    both = decoder.decode(raw_line(b"\xff" + "é".encode()[:1], truncated=True))
    assert set(both.flags) == {"truncated", "invalid_utf8"}
    assert decoder.stats.truncated == 2 and decoder.stats.invalid_utf8 == 1


# --- plain text ----------------------------------------------------------------------------------------


def test_plain_leading_timestamp_detected_and_cut() -> None:
    decoder = Decoder()
    a = decoder.decode_text("2015-10-18 18:01:47,978 INFO [main] started\n")
    cont = decoder.decode_text("\tat org.example.Main.run(Main.java:10)")
    b = decoder.decode_text("2015-10-18 18:01:48,001 WARN [main] slow")
    assert (a.message, a.timestamp) == ("INFO [main] started", pytest.approx(utc(2015, 10, 18, 18, 1, 47) + 0.978))
    assert cont.timestamp is None and cont.flags == () and cont.message.startswith("\tat org")
    assert b.message == "WARN [main] slow" and b.timestamp == pytest.approx(utc(2015, 10, 18, 18, 1, 48) + 0.001)
    assert a.raw == "2015-10-18 18:01:47,978 INFO [main] started"
    assert decoder.time_layout == "iso8601"


def test_plain_bracketed_and_syslog() -> None:
    apache = Decoder().decode_text("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok")
    assert apache.message == "[notice] workerEnv.init() ok" and apache.timestamp == utc(2005, 12, 4, 4, 47, 44)
    syslog = Decoder(default_year=2005).decode_text("Jun  4 15:16:01 combo sshd[1]: session opened")
    assert syslog.message == "combo sshd[1]: session opened" and syslog.timestamp == utc(2005, 6, 4, 15, 16, 1)


def test_plain_detection_skips_an_invalid_first_time() -> None:
    decoder = Decoder()
    first = decoder.decode_text("2015-02-30 10:00:00 no such day")
    second = decoder.decode_text("2015-03-01 10:00:00 fine")
    assert first.timestamp is None and first.flags == () and first.message == "2015-02-30 10:00:00 no such day"
    assert second.timestamp == utc(2015, 3, 1, 10) and second.message == "fine"


def test_plain_leading_number_is_not_a_timestamp() -> None:
    record = Decoder().decode_text("1117838570 bytes copied")
    assert record.timestamp is None and record.message == "1117838570 bytes copied"


def test_plain_with_explicit_time_format() -> None:
    record = Decoder(None, "%d.%m.%Y %H:%M").decode_text("02.01.2024 03:04 backup done")
    assert record.timestamp == utc(2024, 1, 2, 3, 4) and record.message == "backup done"


# --- JSON lines ------------------------------------------------------------------------------------------


def test_json_ecs_nested_and_dotted() -> None:
    decoder = Decoder(HDFS)  # a format does not stop JSON lines from being read as JSON
    nested = decoder.decode_text('{"@timestamp": "2024-01-02T03:04:05.250Z", "message": "user login",'
                                 ' "host": {"name": "web-1"}, "service": {"name": "auth"},'
                                 ' "log": {"level": "warn"}, "http": {"response": {"status_code": 503}}}')
    dotted = decoder.decode_text('{"@timestamp": 1704164645250, "message": "user login", "host.name": "web-1",'
                                 ' "service.name": "auth", "log.level": "warn", "http.response.status_code": 503}')
    for record in (nested, dotted):
        assert record.message == "user login" and record.flags == ()
        assert record.timestamp == pytest.approx(utc(2024, 1, 2, 3, 4, 5) + 0.25)
        assert record.fields == {"host.name": "web-1", "service.name": "auth", "log.level": "warn",
                                 "http.response.status_code": 503}
    assert decoder.stats.json == 2 and decoder.stats.matched == 0 and decoder.stats.unmatched == 0


@pytest.mark.parametrize(("line", "message"), [
    ('{"msg": "zap style", "ts": 1704164645.5}', "zap style"),
    ('{"log": "docker json-file\\n", "time": "2024-01-02T03:04:05.5Z"}', "docker json-file\n"),
    ('{"message": {"text": "nested"}, "msg": "fallback"}', "fallback"),
    ('{"message": ["a", 1]}', '["a", 1]'),
])
def test_json_message_fallbacks(line: str, message: str) -> None:
    assert Decoder().decode_text(line).message == message


def test_json_without_message_keeps_whole_line() -> None:
    line = '{"event": "x", "count": 3}'
    record = Decoder().decode_text(line)
    assert record.message == line and record.fields == {"event": "x", "count": 3} and record.timestamp is None


def test_json_bad_timestamp_flagged() -> None:
    decoder = Decoder()
    record = decoder.decode_text('{"@timestamp": "yesterday", "message": "m"}')
    assert record.timestamp is None and record.flags == ("bad_timestamp",) and decoder.stats.bad_timestamp == 1


def test_json_aliases_do_not_override_ecs() -> None:
    record = Decoder().decode_text('{"msg": "m", "level": "info", "log.level": "error", "hostname": "h"}')
    assert record.fields["log.level"] == "error" and record.fields["host.name"] == "h"


def test_json_lookalikes_in_auto_mode_are_plain() -> None:
    decoder = Decoder()
    for line in ('{"unterminated": ', "[1, 2]", '{not json}'):
        record = decoder.decode_text(line)
        assert record.message == line and record.flags == ()
    assert decoder.stats.json == 0


def test_json_mode_off() -> None:
    record = Decoder(json_mode="off").decode_text('{"message": "m"}')
    assert record.message == '{"message": "m"}' and record.fields == {}


def test_strict_json_mode_flags_with_reason() -> None:
    decoder = Decoder(json_mode="strict")
    ok = decoder.decode_text('{"message": "fine"}')
    plain = decoder.decode(raw_line("not json at all", "topic/0", 41))
    broken = decoder.decode_text('{"message": ')
    assert ok.flags == () and ok.message == "fine"
    assert plain.flags == ("not_json",) and plain.fields["error.message"] == "not a JSON object"
    assert (plain.origin, plain.offset, plain.message) == ("topic/0", 41, "not json at all")
    assert broken.flags == ("not_json",) and broken.fields["error.message"].startswith("invalid JSON:")
    assert decoder.stats.not_json == 2 and decoder.stats.json == 1
    with pytest.raises(FormatError, match="json mode"):
        Decoder(json_mode="sometimes")


# --- check_format_matches ------------------------------------------------------------------------------


def test_check_format_matches_none() -> None:
    lines = raw_lines(["", "[Sun Dec 04 04:47:44 2005] [notice] ok", "x"], origin="apache.log")
    decoder = Decoder(HDFS)
    with pytest.raises(FormatError) as err:
        check_format_matches(decoder, lines)
    assert str(err.value) == ("--log-format matched none of the first 3 lines of apache.log; "
                              "first line was: [Sun Dec 04 04:47:44 2005] [notice] ok")
    assert decoder.stats.lines == 0  # checking does not count as decoding


def test_check_format_matches_some_and_edge_cases() -> None:
    assert check_format_matches(Decoder(HDFS), [HDFS_LINE, "junk", HDFS_LINE.encode()]) == 2
    assert check_format_matches(Decoder(HDFS), []) == 0
    assert check_format_matches(Decoder(), ["anything"]) == 0
    with pytest.raises(FormatError, match=r"of x\.log; first line was: a{200}\.\.\."):
        check_format_matches(Decoder(HDFS), ["a" * 500], source="x.log")


# --- properties ----------------------------------------------------------------------------------------


@example(data=b"}", truncated=False, mode=(HDFS, None, "auto"))
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), truncated=st.booleans(),
       mode=st.sampled_from([(HDFS, None, "auto"), (None, None, "auto"), (None, None, "strict"),
                             (LOG_FORMATS["Linux"], "%b %d %H:%M:%S", "auto")]))
def test_decode_never_raises_and_counts_every_line(data: bytes, truncated: bool,
                                                   mode: tuple[str | None, str | None, str]) -> None:
    log_format, time_format, json_mode = mode
    decoder = Decoder(log_format, time_format, json_mode=json_mode)
    record = decoder.decode(raw_line(data, truncated=truncated))
    record2 = decoder.decode(raw_line(b"{" + data))
    assert isinstance(record.message, str) and isinstance(record2.message, str)
    assert decoder.stats.lines == 2
    stats = decoder.stats
    # Every line lands in exactly one of matched / unmatched / json / (strict) not_json, or is plain text
    # without a layout. In ``auto`` mode ``not_json`` is a problem count that overlaps: a text line of a
    # stream that also holds JSON objects is decoded as text *and* counted as not JSON (b'}' then b'{}').
    disjoint = stats.matched + stats.unmatched + stats.json + (stats.not_json if json_mode == "strict" else 0)
    assert disjoint <= 2
    assert stats.not_json <= stats.lines - stats.json
    assert ("truncated" in record.flags) == truncated


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=120))
def test_decode_text_never_raises(text: str) -> None:
    for decoder in (Decoder(), Decoder(HDFS), Decoder(json_mode="strict")):
        assert isinstance(decoder.decode_text(text).message, str)


# --- layout syntax: text is literal; only Loghub's escapes and optional parts are special ----------------


@pytest.mark.parametrize(("fmt", "line", "expected"), [
    ("<Time>|<Component>|<Pid>|<Content>", "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
     ("onStandStepChanged 3579", {"Time": "20171223-22:15:29:606", "Component": "Step_LSC", "Pid": "30002312"})),
    (r"<Time>\|<Component>\|<Pid>\|<Content>", "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
     ("onStandStepChanged 3579", {"Time": "20171223-22:15:29:606", "Component": "Step_LSC", "Pid": "30002312"})),
    ("<Level> [<Component>] <Content>", "WARN [db.pool] slow query", ("slow query", {"Level": "WARN",
                                                                                  "Component": "db.pool"})),
    ("<Level> (<Component>) <Content>", "WARN (db) slow (really)", ("slow (really)", {"Level": "WARN",
                                                                                    "Component": "db"})),
    ("<Level>.*<Content>", "WARN.*x.y", ("x.y", {"Level": "WARN"})),
    (r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
     "Jul  1 09:00:55 calvisitor-10-105-160-95 kernel[0]: IOThunderboltSwitch<0>(0x0)::listenerCallback",
     ("IOThunderboltSwitch<0>(0x0)::listenerCallback", {"Month": "Jul", "Date": "1", "Time": "09:00:55",
                                                        "User": "calvisitor-10-105-160-95", "Component": "kernel",
                                                        "PID": "0"})),
    (r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
     "Jul  1 09:01:05 calvisitor-10-105-160-95 com.apple.CDScheduler[43] (0x7fb1): Thermal pressure 0",
     ("Thermal pressure 0", {"Month": "Jul", "Date": "1", "Time": "09:01:05", "User": "calvisitor-10-105-160-95",
                             "Component": "com.apple.CDScheduler", "PID": "43", "Address": "0x7fb1"})),
])
def test_layout_text_is_literal(fmt: str, line: str, expected: tuple[str, dict[str, str]]) -> None:
    assert LogFormat(fmt).match(line) == expected


def test_layout_pipe_without_escape_decodes_instead_of_crashing() -> None:
    decoder = Decoder("<Time>|<Component>|<Pid>|<Content>")
    record = decoder.decode(raw_line(b"20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579"))
    assert record.message == "onStandStepChanged 3579" and record.fields["Pid"] == "30002312"
    assert decoder.decode(raw_line(b"no pipes here")).flags == ("unmatched",)


# --- matching time: linear in the line, bounded per line at --max-line-bytes ----------------------------

MAX_LINE = 64 * 1024
# Generous for a loaded 2-core machine; the logparser-style compilation takes seconds to hours on these lines.
LINE_BOUND_S = 0.05
OPENSTACK_LINE = (
    "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server "
    "[req-38101a0b-2096-447d-96ea-a692162415ae 113d3a99c3da401fbd62cc2caa5b96d2 54fadb412c4e40cdbaed9335e4c35a9e"
    ' - - -] 10.11.10.1 "GET /v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail HTTP/1.1" status: 200 len: 1893'
    " time: 0.2477829")
WINDOWS_LINE = (
    "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505 with Core: "
    r"C:\Windows\winsxs\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_6.1.7601.23505_none\cbscore.dll")


class _Deadline:
    """Fails a test after ``seconds`` instead of letting a runaway regex hold the suite for minutes.

    The regex engine checks for signals while it backtracks, so SIGALRM interrupts it.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        def expire(signum: int, frame: object) -> None:
            raise TimeoutError(f"matching took more than {self.seconds} s")

        self._old = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._old)


def _worst_match_seconds(fmt: LogFormat, lines: list[str], rounds: int = 3) -> float:
    """The slowest line's best-of-``rounds`` matching time (best: other load only ever slows a run)."""
    worst = 0.0
    with _Deadline(10):
        for line in lines:
            best = float("inf")
            for _ in range(rounds):
                start = time.perf_counter()
                fmt.match(line)
                best = min(best, time.perf_counter() - start)
            worst = max(worst, best)
    return worst


def test_sixty_words_that_do_not_fit_hdfs_are_rejected_fast() -> None:
    line = "081109 203615 148 INFO dfs.DataNode " + " ".join(f"word{i}" for i in range(55))
    assert len(line.split()) == 60
    fmt = LogFormat(HDFS)
    assert fmt.match(line) is None
    assert _worst_match_seconds(fmt, [line]) < LINE_BOUND_S


def test_mixed_openstack_and_windows_lines_are_fast_both_ways() -> None:
    openstack, windows = LogFormat(LOGHUB_LAYOUTS["OpenStack"]), LogFormat(LOGHUB_LAYOUTS["Windows"])
    assert openstack.match(OPENSTACK_LINE) is not None and windows.match(WINDOWS_LINE) is not None
    assert openstack.match(WINDOWS_LINE) is None
    mixed = [OPENSTACK_LINE, WINDOWS_LINE] * 20
    assert _worst_match_seconds(openstack, mixed, rounds=1) < LINE_BOUND_S
    assert _worst_match_seconds(windows, mixed, rounds=1) < LINE_BOUND_S


def _hostile_lines(fmt: str) -> dict[str, str]:
    """64 KiB lines of the shapes that make a backtracking layout slow, plus this layout's own punctuation."""
    punctuation = "".join(sorted({c for c in re.sub(r"<[^<>]+>", "", fmt) if not c.isalnum() and c != "\\"}))

    def fill(unit: str) -> str:  # about MAX_LINE bytes of UTF-8 (a lone surrogate counted as 3)
        size = len(unit.encode(errors="surrogatepass"))
        return unit * (MAX_LINE // size)

    return {
        "words": fill("a "), "no_spaces": fill("a"), "colons": fill(": "), "bare_colons": fill(":"),
        "brackets": fill("[a] "), "open_brackets": fill("["), "replaced_utf8": fill("\ufffd "),
        "lone_surrogate": fill("\ud800 "), "one_space_run": "a" + " " * (MAX_LINE - 2) + "b",
        "punctuation": fill(punctuation + "a "), "punctuation_no_spaces": fill(punctuation.strip() + "a"),
        "hdfs_prefix": "081109 203615 148 INFO " + fill("a "), "bracket_prefix": "[Sun Dec 04] [error] " + fill("a ["),
    }


@pytest.mark.parametrize("system", sorted(LOGHUB_LAYOUTS))
def test_hostile_lines_decode_within_the_bound(system: str) -> None:
    fmt = LogFormat(LOGHUB_LAYOUTS[system])
    lines = _hostile_lines(LOGHUB_LAYOUTS[system])
    assert _worst_match_seconds(fmt, list(lines.values()), rounds=2) < LINE_BOUND_S
    decoder = Decoder(LOGHUB_LAYOUTS[system])
    with _Deadline(10):
        for shape, line in lines.items():
            start = time.perf_counter()
            record = decoder.decode_text(line)
            assert time.perf_counter() - start < LINE_BOUND_S * 2, shape  # matching plus time detection
            assert record.flags in ((), ("unmatched",), ("bad_timestamp",)), shape
            if record.flags == ("unmatched",):
                assert record.message == line  # kept whole
            else:
                assert len(record.message) + sum(map(len, record.fields.values())) <= len(line)


def test_matching_time_grows_linearly() -> None:
    fmt = LogFormat(LOGHUB_LAYOUTS["Zookeeper"])
    small, large = ("2015-07-29 - " + "a - " * n for n in (2_000, 16_000))
    ratio = _worst_match_seconds(fmt, [large], rounds=7) / max(_worst_match_seconds(fmt, [small], rounds=7), 1e-6)
    assert ratio < 8 * 3  # 8 times the text; quadratic would be about 64


# --- poison input: nesting, NUL bytes, lone surrogates (issue 13) ---------------------------------------

DEEP = 100_000  # far past Python's recursion limit: json.loads alone raises RecursionError on it


def _deep_object(depth: int) -> bytes:
    return b'{"message": "blk_7 deep", "x": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


@pytest.mark.parametrize("line", [_deep_object(DEEP), b'{"message": ' + b"[" * DEEP + b"]" * DEEP + b"}",
                                  _deep_object(500), b'{"m": "\\ud800", "x": ' + b"[" * 900 + b"]" * 900 + b"}"],
                         ids=["object", "array", "500", "surrogate"])
def test_json_nested_too_deep_is_not_json_in_a_json_stream_and_text_otherwise(line: bytes) -> None:
    strict = Decoder(json_mode="strict")
    record = strict.decode(raw_line(line))
    assert record.flags[-1:] == ("not_json",) and record.timestamp is None
    assert record.fields["error.message"] == "JSON nested deeper than 64 levels"
    assert strict.stats.not_json == 1
    auto = Decoder()
    record = auto.decode(raw_line(line))
    assert record.flags == () and record.message == line.decode()  # a text line, kept whole
    assert auto.stats.json == 0


def test_json_nested_up_to_the_limit_is_read() -> None:
    line = b'{"message": "blk_7 ok", "a": ' + b'{"b": ' * 62 + b"1" + b"}" * 62 + b"}"
    record = Decoder(json_mode="strict").decode(raw_line(line))
    assert record.flags == () and record.message == "blk_7 ok"
    assert record.fields["a" + ".b" * 62] == 1


def test_nul_bytes_are_kept_as_text() -> None:
    record = Decoder(HDFS).decode(raw_line(HDFS_LINE.replace("terminating", "term\x00inating").encode()))
    assert record.flags == () and record.message.endswith("term\x00inating")
    escaped = Decoder(json_mode="strict").decode(raw_line(b'{"message": "a\\u0000b"}'))
    assert escaped.flags == () and escaped.message == "a\x00b"
    raw = Decoder(json_mode="strict").decode(raw_line(b'{"message": "a\x00b"}'))  # a control character: not JSON
    assert raw.flags == ("not_json",) and "Invalid control character" in raw.fields["error.message"]


def test_utf8_encoded_surrogates_are_invalid_utf8() -> None:
    record = Decoder(HDFS).decode(raw_line(HDFS_LINE.encode() + b" \xed\xa0\x80"))
    assert record.flags == ("invalid_utf8",) and record.message.endswith("\ufffd" * 3)


# --- the fast path for plain layout lines ---------------------------------------------------------------

FAST_PATH_LINES = [
    "not a line of the layout",                                   # unmatched before any time is known
    "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown",
    "Jun 14 15:16:02 combo su: session opened",                   # no PID: an optional part left out
    "Jun 31 15:16:03 combo su: no such day",                      # a bad time once the parser is known
    '{"message": "a JSON object", "log.level": "info"}',          # JSON: counted, then text is not_json too
    "Jun 14 15:16:04 combo sshd(pam_unix)[19940]: after JSON",
    "Jun 14 15:16:04 combo sshd(pam_unix)[19941]: same second",
    "also not the layout",
    "2099-06-14 15:16:05 combo su: a time far in the future",     # parsed the same way on both paths
    "Jun 14 15:16:06 combo su: " + "x" * 65536,                   # a 64 KiB line that fits the layout
    "\x00 " + "y" * 65536,                                          # a NUL, no layout, 64 KiB
]


@pytest.mark.parametrize(("log_format", "time_format"), [
    (LOG_FORMATS["Linux"], None), (LOG_FORMATS["Linux"], "%b %d %H:%M:%S"), ("<Month> <Content>", None),
    ("<Date> <Time> <Rest> <Content>", None),
])
@pytest.mark.parametrize("json_mode", ["auto", "off"])
def test_bytes_decode_like_the_general_path(log_format: str, time_format: str | None, json_mode: str) -> None:
    """``decode`` of a plain one-line RawLine takes a shortcut; ``decode_text`` does not: same records, counts."""
    fast = Decoder(log_format, time_format, json_mode=json_mode, default_year=2005)
    general = Decoder(log_format, time_format, json_mode=json_mode, default_year=2005)
    for offset, line in enumerate(FAST_PATH_LINES * 2, start=1):
        assert fast.decode(raw_line(line, offset=offset)) == general.decode_text(line, "test.log", offset)
    assert fast.stats == general.stats
    assert fast.time_layout == general.time_layout


# One time field chosen alone (BGL's epoch ``Timestamp``, the joined fields being no time): the shortcut parses that
# field as ``_fields_time`` does, anything else goes the general way.
ONE_FIELD_LINES = [
    "not a line of the layout",
    "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO a",
    "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO b",
    "- 1117838573.5 2005.06.03 R02 2005-06-03-15.42.53.276129 R02 RAS KERNEL INFO a fraction of a second",
    "- nonsense 2005.06.03 R02 2005-06-03-15.42.53.276129 R02 RAS KERNEL INFO not a time: bad_timestamp",
    "- 1117838976000 2005.06.03 R02 2005-06-03-15.49.36.156884 R02 RAS KERNEL INFO millis",
    "- 99999999999999999999999 2005.06.03 R02 x R02 RAS KERNEL INFO too many digits",
    '{"message": "a JSON object"}',
    "- 1117838977 2005.06.03 R02 2005-06-03-15.49.37.1 R02 RAS KERNEL INFO after JSON",
    "- 1117838978 2005.06.03 R02 2005-06-03-15.49.38.1 R02 RAS KERNEL INFO " + "x" * 65536,
]


@pytest.mark.parametrize("log_format", [LOG_FORMATS["BGL"], "<Label> <Timestamp> <Date>( \\[<Time>\\])? <Content>"])
@pytest.mark.parametrize("json_mode", ["auto", "off"])
def test_one_chosen_time_field_decodes_like_the_general_path(log_format: str, json_mode: str) -> None:
    fast = Decoder(log_format, json_mode=json_mode)
    general = Decoder(log_format, json_mode=json_mode)
    for offset, line in enumerate(ONE_FIELD_LINES * 2, start=1):
        assert fast.decode(raw_line(line, offset=offset)) == general.decode_text(line, "test.log", offset)
    assert fast.stats == general.stats and fast.stats.bad_timestamp
    assert fast.time_layout == general.time_layout == "epoch" and fast._field_parser is not None


# --- JSON records: orjson where it answers as json.loads does --------------------------------------------

HOSTILE_JSON = [
    b'{"@timestamp": "2024-01-02T03:04:05Z", "message": "ok", "host": {"name": "a"}, "log": {"file": {"path": "/x"}}}',
    b'{"message": "lone \\ud800 half", "k": "\\udc00"}',                    # lone surrogate escapes
    b'{"message": "pair \\ud83d\\ude00", "n": NaN, "i": Infinity, "j": -Infinity}',
    b'{"message": "big", "a": 1180591620717411303424, "b": [-9223372036854775809], "c": 18446744073709551616}',
    b'{"message": "edge", "a": 9223372036854775807, "b": -9223372036854775808, "c": 18446744073709551615}',
    b'{"message": "far", "f": 1e400, "g": -1e-400, "z": -0.0, "w": -0}',
    b'{"message": "bad \xff\xfe bytes", "x": 1}',                           # invalid UTF-8
    b'{"message": "utf-8 surrogate \xed\xa0\x80"}',
    b'{"message": "dup", "host": {"name": "a"}, "host.name": "b", "message": "again"}',
    b'{"message": "deep", "d": ' + b"[" * 70 + b"]" * 70 + b"}",
    b'{"message": "deep enough", "d": ' + b"[" * 62 + b"]" * 62 + b"}",
    b'{"message": "' + b"v" * 65536 + b'"}',
    b'{"message": "unicode \xc3\xbc\xe2\x98\x83 \xf0\x9f\x98\x80", "ts": 1704164645250}',
    b'{"message": "nul \\u0000", "time": "2024-01-02T03:04:05.5Z"}',
    b'{"message": "ctrl \x01"}',
    b' {"message": "leading space"}',
    b'{"message": "trailing"} ',
    b'{"message": "cut", "x": "abcdef',
    b'{"message": "\xe2\x98',                                              # cut in a character (truncated below)
    b"[1, 2]",
    b"{not json}",
]


@pytest.mark.parametrize("json_mode", ["auto", "strict"])
@pytest.mark.parametrize("truncated", [False, True])
def test_json_records_decode_as_without_orjson(monkeypatch: pytest.MonkeyPatch, json_mode: str,
                                               truncated: bool) -> None:
    """The same records, flags and counts when orjson refuses every line (the path of json.loads alone)."""
    import orjson  # noqa: PLC0415

    from pipeline.stages import jsonlog  # noqa: PLC0415

    assert jsonlog.loads_record(HOSTILE_JSON[0].decode())[1]  # the first line does go through orjson
    lines = [RawLine(data, "t/0", n, None, 1.0, truncated) for n, data in enumerate(HOSTILE_JSON * 2)]
    lines.append(RawLine(b"\n".join(HOSTILE_JSON[:3]), "t/0", 99, None, 1.0, False, 3, 101))  # a multi-line record
    fast = Decoder(json_mode=json_mode)
    fast_records = [fast.decode(line) for line in lines]

    def refuse(data: bytes | str) -> object:
        raise orjson.JSONDecodeError("refused", "", 0)

    monkeypatch.setattr(jsonlog, "_orjson_loads", refuse)
    plain = Decoder(json_mode=json_mode)
    for line, record in zip(lines, fast_records, strict=True):
        expected = plain.decode(line)
        assert repr(record) == repr(expected)
    assert fast.stats == plain.stats


@pytest.mark.parametrize("log_format", [None, HDFS])
@pytest.mark.parametrize("json_mode", ["auto", "strict", "off"])
def test_json_bytes_decode_like_the_general_path(log_format: str | None, json_mode: str) -> None:
    """``decode`` of a one-line RawLine that starts with ``{`` takes a shortcut; ``decode_text`` does not: the same
    records and counts, text lines and hostile JSON mixed (the time memo and layout carried along alike)."""
    lines = [HDFS_LINE.encode(), *HOSTILE_JSON, b'{"message": "m", "ts": "never"}', b'{"msg": "a", "time": 17e8}',
             b'{"message": "\\ud800", "@timestamp": "soon"}', b'{}', HDFS_LINE.encode(), b'{"log": {"level": 5}}']
    fast = Decoder(log_format, json_mode=json_mode)
    general = Decoder(log_format, json_mode=json_mode)
    for offset, data in enumerate(lines * 2, start=1):
        text = data.decode(errors="replace")
        if "\ufffd" in text:
            continue  # decode_text is given text: invalid bytes are the general path's on both sides
        assert repr(fast.decode(raw_line(data, offset=offset))) == repr(general.decode_text(text, "test.log", offset))
    assert fast.stats == general.stats
