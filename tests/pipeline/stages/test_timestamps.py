"""Time parsing: compiled strptime formats agree with strptime; auto-detection layouts; years and zones."""

from __future__ import annotations

import time as real_time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipeline.stages.timestamps as timestamps
from pipeline.errors import FormatError
from pipeline.stages.timestamps import TimeParser, auto_parsers, detect_parser, epoch_seconds
from tests.fakes import utc


@pytest.mark.parametrize(("text", "layout", "expected"), [
    ("2015-10-18 18:01:47,978", "iso8601", utc(2015, 10, 18, 18, 1, 47) + 0.978),
    ("2015-10-18T18:01:47.978123456Z", "iso8601", utc(2015, 10, 18, 18, 1, 47) + 0.978123456),
    ("2015-10-18T18:01:47+05:30", "iso8601", utc(2015, 10, 18, 12, 31, 47)),
    ("2015-10-18 18:01:47 -0700", "iso8601", utc(2015, 10, 19, 1, 1, 47)),
    ("2009/11/10 23:00:00", "ymd-slash", utc(2009, 11, 10, 23)),
    ("10/Oct/2000:13:55:36 -0700", "clf", utc(2000, 10, 10, 20, 55, 36)),
    ("Sun Dec 04 04:47:44 2005", "ctime", utc(2005, 12, 4, 4, 47, 44)),
    ("Wed Oct 11 14:32:52.250000 2000", "ctime", utc(2000, 10, 11, 14, 32, 52) + 0.25),
    ("Jun 14 15:16:01", "syslog", utc(2005, 6, 14, 15, 16, 1)),
    ("Jun  4 15:16:01", "syslog", utc(2005, 6, 4, 15, 16, 1)),
    ("17/06/09 20:10:40", "yymmdd-slash", utc(2017, 6, 9, 20, 10, 40)),
    ("081109 203615", "yymmdd-compact", utc(2008, 11, 9, 20, 36, 15)),
    ("1117838570", "epoch", 1117838570.0),
    ("1117838570.5", "epoch", 1117838570.5),
    ("1117838570123", "epoch", 1117838570.123),
])
def test_auto_layouts(text: str, layout: str, expected: float) -> None:
    parser = detect_parser(text, auto_parsers(default_year=2005))
    assert parser is not None and parser.name == layout
    assert parser.parse(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["", "hello", "2015-13-01 00:00:00", "2023-02-29 10:00:00", "Foo 12 10:00:00",
                                  "12345", "2015-10-18 25:00:00"])
def test_nothing_detected_for_non_times(text: str) -> None:
    assert detect_parser(text, auto_parsers()) is None


def test_epoch_scales() -> None:
    assert epoch_seconds(1_700_000_000) == 1_700_000_000
    assert epoch_seconds(1_700_000_000_123) == pytest.approx(1_700_000_000.123)
    assert epoch_seconds(1_700_000_000_123_456) == pytest.approx(1_700_000_000.123456)
    assert epoch_seconds("1700000000123456789") == pytest.approx(1_700_000_000.123456789)


FORMATS = ["%Y-%m-%d %H:%M:%S", "%y%m%d %H%M%S", "%Y-%m-%dT%H:%M:%S.%f", "%a %b %d %H:%M:%S %Y",
           "%d/%b/%Y:%H:%M:%S %z", "%j %Y %H:%M", "%B %d, %Y %H:%M:%S", "%Y%m%d%H%M%S", "%I:%M:%S %p %d.%m.%Y"]


@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 30)),
       offset=st.integers(min_value=-14 * 60, max_value=14 * 60), fmt=st.sampled_from(FORMATS))
def test_compiled_format_agrees_with_strptime(moment: datetime, offset: int, fmt: str) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset)))
    text = aware.strftime(fmt)
    expected = datetime.strptime(text, fmt)
    if expected.tzinfo is None:
        expected = expected.replace(tzinfo=UTC)
    assert TimeParser.from_strptime(fmt).parse(text) == pytest.approx(expected.timestamp(), abs=1e-6)


def test_compiled_unless_directive_unknown() -> None:
    assert TimeParser.from_strptime("%Y-%m-%d")._strptime is None
    fallback = TimeParser.from_strptime("%I:%M %p %d/%m/%Y")
    assert fallback._strptime is not None and fallback.parse("03:04 PM 01/02/2020") == utc(2020, 2, 1, 15, 4)
    assert fallback.parse_prefix("03:04 PM 01/02/2020 rest") is None  # strptime cannot find where a time ends


def test_extensions_beyond_strptime() -> None:
    assert TimeParser.from_strptime("%Y-%m-%d %T").parse("2020-01-01 10:11:12") == utc(2020, 1, 1, 10, 11, 12)
    assert TimeParser.from_strptime("%s").parse("1700000000.5") == 1700000000.5


def test_nanoseconds_and_leap_second() -> None:
    parser = TimeParser.from_strptime("%Y-%m-%d %H:%M:%S.%f")
    assert parser.parse("2020-01-01 00:00:00.123456789") == pytest.approx(utc(2020, 1, 1) + 0.123456789)
    assert parser.parse("2016-12-31 23:59:60.5") == pytest.approx(utc(2016, 12, 31, 23, 59, 59) + 0.5)


@pytest.mark.parametrize("fmt", ["plain", "%Q", "%Y %"])
def test_bad_formats(fmt: str) -> None:
    with pytest.raises(FormatError, match="--time-format"):
        TimeParser.from_strptime(fmt)


def test_rejects_text_that_does_not_fit() -> None:
    parser = TimeParser.from_strptime("%Y-%m-%d %H:%M:%S")
    for bad in ("2020-01-01", "2020-01-01 10:00:00 extra", "2021-02-29 10:00:00", "2020-00-10 10:00:00"):
        with pytest.raises(ValueError):
            parser.parse(bad)
    with pytest.raises(ValueError, match="unknown month"):
        TimeParser.from_strptime("%b %d %Y").parse("Foo 10 2020")


def test_naive_times_in_given_zone() -> None:
    berlin_winter = timezone(timedelta(hours=1))
    parser = TimeParser.from_strptime("%Y-%m-%d %H:%M:%S", tz=berlin_winter)
    assert parser.parse("2020-01-01 01:00:30") == utc(2020, 1, 1, 0, 0, 30)
    zoned = TimeParser.from_strptime("%Y-%m-%d %H:%M:%S %z", tz=berlin_winter)
    assert zoned.parse("2020-01-01 01:00:30 +0000") == utc(2020, 1, 1, 1, 0, 30)  # an explicit zone wins


def test_prefix_needs_a_boundary() -> None:
    iso = auto_parsers(names=("iso8601",))[0]
    hit = iso.parse_prefix("2015-10-18 18:01:47,978 INFO x")
    assert hit is not None and hit == (pytest.approx(utc(2015, 10, 18, 18, 1, 47) + 0.978), 23)
    assert iso.parse_prefix("2015-10-18 18:01:47abc") is None
    assert iso.parse_prefix("x 2015-10-18 18:01:47") is None
    with pytest.raises(ValueError):
        iso.parse_prefix("2015-02-30 18:01:47 x")


class FakeTime:
    """Stands in for the ``time`` module: a fixed "now"."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def gmtime(self, seconds: float | None = None) -> real_time.struct_time:
        return real_time.gmtime(self.now if seconds is None else seconds)


def test_assumed_year_goes_back_for_future_dates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timestamps, "time", FakeTime(utc(2024, 1, 5, 12)))
    parser = TimeParser.from_strptime("%b %d %H:%M:%S")
    assert parser.parse("Jan 05 11:00:00") == utc(2024, 1, 5, 11)
    assert parser.parse("Jan 06 11:00:00") == utc(2024, 1, 6, 11)   # slightly ahead (clock skew): same year
    assert parser.parse("Dec 31 23:59:59") == utc(2023, 12, 31, 23, 59, 59)
    strptime_based = TimeParser.from_strptime("%b %d %I:%M:%S %p")
    assert strptime_based.parse("Dec 31 11:59:59 PM") == utc(2023, 12, 31, 23, 59, 59)
    fixed = TimeParser.from_strptime("%b %d %H:%M:%S", default_year=2005)
    assert fixed.parse("Dec 31 23:59:59") == utc(2005, 12, 31, 23, 59, 59)


def test_feb_29_needs_a_leap_year() -> None:
    assert TimeParser.from_strptime("%b %d", default_year=2024).parse("Feb 29") == utc(2024, 2, 29)
    with pytest.raises(ValueError):
        TimeParser.from_strptime("%b %d", default_year=2023).parse("Feb 29")


def test_feb_29_without_a_year_parses_on_the_strptime_path_too() -> None:
    """%p sends the format to strptime, whose own default year (1900) has no Feb 29 (and warns on 3.13)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        parser = TimeParser.from_strptime("%b %d %I:%M:%S %p", default_year=2024)
        assert parser.parse("Feb 29 01:02:03 PM") == utc(2024, 2, 29, 13, 2, 3)
        with pytest.raises(ValueError):
            TimeParser.from_strptime("%b %d %I:%M:%S %p", default_year=2023).parse("Feb 29 01:02:03 PM")


def test_day_of_year() -> None:
    parser = TimeParser.from_strptime("%Y %j")
    assert parser.parse("2020 060") == utc(2020, 2, 29)
    assert parser.parse("2020 061") == utc(2020, 3, 1)


# Texts sharing their seconds (fractions of one second), in every layout with a fraction or a zone and in strptime
# formats, read in UTC, a fixed offset and a zone with daylight saving time.
_MEMO_FORMATS = ["%Y-%m-%d %H:%M:%S,%f", "%Y-%m-%dT%H:%M:%S.%f%z", "%d/%b/%Y:%H:%M:%S %z", "%y%m%d %H%M%S",
                 "%b %d %H:%M:%S.%f", "%j %Y %H:%M"]


@settings(max_examples=200, deadline=None)
@given(moments=st.lists(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 30)),
                        min_size=1, max_size=3),
       offset=st.integers(min_value=-14 * 60, max_value=14 * 60), fmt=st.sampled_from(_MEMO_FORMATS),
       zone=st.sampled_from(["UTC", "Europe/Berlin", "America/St_Johns"]),
       fractions=st.lists(st.integers(0, 999_999), min_size=1, max_size=6), year=st.sampled_from([None, 2024]))
def test_memoised_second_is_the_uncached_answer(moments: list[datetime], offset: int, fmt: str, zone: str,
                                                fractions: list[int], year: int | None) -> None:
    """The per-second memo of ``_from_groups`` gives the very float the uncached path gives (``==``, not approx)."""
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    tz = UTC if zone == "UTC" else ZoneInfo(zone)
    parser = TimeParser.from_strptime(fmt, tz=tz, default_year=year)
    plain = TimeParser.from_strptime(fmt, tz=tz, default_year=year)
    zoned = [moment.replace(tzinfo=timezone(timedelta(minutes=offset))) for moment in moments]
    # each text twice and the seconds interleaved: later reads come from the memo
    for aware, fraction in [(aware, fraction) for fraction in fractions for aware in zoned] * 2:
        text = aware.replace(microsecond=fraction).strftime(fmt)
        match = parser._full.match(text)
        assert match is not None
        expected = plain._from_groups_afresh(match.groups())
        parser._last_text = None  # past the one-text memo of ``parse``, to the per-second one
        assert parser.parse(text) == expected


@settings(max_examples=200, deadline=None)
@given(minutes=st.lists(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 30)), min_size=1,
                        max_size=3),
       seconds=st.lists(st.integers(0, 60), min_size=1, max_size=20), fmt=st.sampled_from(_MEMO_FORMATS),
       offset=st.integers(min_value=-14 * 60, max_value=14 * 60), fraction=st.integers(0, 999_999),
       year=st.sampled_from([None, 2024]))
def test_memoised_minute_is_the_uncached_answer(minutes: list[datetime], seconds: list[int], fmt: str, offset: int,
                                                fraction: int, year: int | None) -> None:
    """In UTC the memo is per minute: the seconds of a minute (a leap second too), read in any order, with and
    without a zone in the text, give the very float the uncached path gives."""
    parser = TimeParser.from_strptime(fmt, default_year=year)
    plain = TimeParser.from_strptime(fmt, default_year=year)
    if "%S" in fmt and parser._seconds is not None:  # a memo at all (a year in the text or given)
        assert parser._minute_key is not None
    for minute in minutes:
        aware = minute.replace(second=0, microsecond=fraction, tzinfo=timezone(timedelta(minutes=offset)))
        for second in [*seconds, *reversed(seconds)]:
            text = aware.strftime(fmt.replace("%S", f"{second:02d}"))
            match = parser._full.match(text)
            if match is None:  # a leap second the layout's pattern does not take
                assert second == 60
                continue
            parser._last_text = None
            assert parser.parse(text) == plain._from_groups_afresh(match.groups()), text


def test_memo_only_where_the_answer_depends_on_the_text_alone() -> None:
    assert TimeParser.from_strptime("%Y-%m-%d %H:%M:%S")._seconds is not None
    assert TimeParser.from_strptime("%b %d %H:%M:%S", default_year=2024)._seconds is not None
    assert TimeParser.from_strptime("%b %d %H:%M:%S")._seconds is None  # the year depends on the clock
    assert TimeParser.from_strptime("%s")._seconds is None
    assert TimeParser.from_strptime("%I:%M:%S %p %d.%m.%Y")._seconds is None  # strptime's path
    assert TimeParser.from_strptime("%Y-%m-%d %H:%M:%S", tz=timezone(timedelta(hours=2)))._minute_key is None


# Heads (the text before the seconds) and tails (seconds, fraction, zone) of the auto layouts that read a tail alone
# after a text with the same head: valid, leap, a zone, a bad second, Unicode digits, nothing, an extra character.
_HEADS = {
    "iso8601": ["2015-07-29 17:41:", "2015-07-29T17:42:", "2016-02-29 00:00:", "2015-02-29 00:00:", "2015-07-29 24:00:",
                "\u0662015-07-29 17:41:"],
    "ymd-slash": ["2009/11/10 23:00:", "2009/11/10 23:01:", "2009/13/10 23:01:"],
    "yymmdd-slash": ["17/06/09 20:10:", "17/06/09 20:11:", "17/02/30 20:11:"],
    "yymmdd-compact": ["081109 2036", "081109 2037", "081199 2037"],
}
_TAILS = ["15", "59", "60", "61", "7", "15,747", "15.1", "15,123456789", "15,1234567890", "15Z", "15,5 +05:30",
          "15-0700", "1\u0665", "15,\u0665", "", "15 ", "15,", "x"]


@settings(max_examples=300, deadline=None)
@given(layout=st.sampled_from(sorted(_HEADS)), data=st.data())
def test_a_tail_read_after_the_same_head_is_the_uncached_answer(layout: str, data: st.DataObject) -> None:
    """``parse`` reading only the seconds' tail after a text with the same head (see ``TimeParser.parse``) gives
    what a fresh parser's uncached path gives, or the same ValueError, for any order of heads and tails."""
    texts = data.draw(st.lists(st.tuples(st.sampled_from(_HEADS[layout]), st.sampled_from(_TAILS)).map("".join),
                               min_size=1, max_size=30))
    (parser,) = auto_parsers(names=(layout,))
    assert parser._tail is not None
    for text in texts:
        (plain,) = auto_parsers(names=(layout,))
        match = plain._full.match(text)
        try:
            expected = plain._from_groups_afresh(match.groups()) if match is not None else None
        except ValueError:
            expected = None
        if expected is None:
            with pytest.raises(ValueError):
                parser.parse(text)
        else:
            assert parser.parse(text) == expected, text


def test_the_tail_is_read_only_for_fixed_heads_in_utc() -> None:
    tails = {p.name: p._tail is not None for p in auto_parsers()}
    assert tails == {"iso8601": True, "ymd-slash": True, "clf": False, "ctime": False, "syslog": False,
                     "yymmdd-slash": True, "yymmdd-compact": True, "epoch": False}
    assert all(p._tail is None for p in auto_parsers(tz=timezone(timedelta(hours=2))))
    (parser,) = auto_parsers(names=("iso8601",))
    parser.parse("2015-07-29 17:41:44,747")
    assert parser._tail_head == "2015-07-29 17:41:"
    parser.parse("2015-07-29 17:41:45+01:00")  # a zone: the next text is read whole
    assert parser._tail_head is None
