"""Layouts: ``LogFormat.match`` picks out of a match the fields of the plain reading (all, then the message)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.loghub import LOG_FORMATS
from pipeline.stages.layouts import MESSAGE_FIELD, LogFormat

LAYOUTS = [*LOG_FORMATS.values(), "<Content>", "<Time> <Content>", "<Content> <Level>", "<A>|<B>|<Content>",
           "<Date> <Time>( \\[<Pid>\\])? <Level>: <Content>", "<host.name> <log.level>( \\[<p.id>\\])? <Content>",
           "<Time> <log.level> <Content>"]


def plain_match(layout: LogFormat, line: str) -> tuple[str, dict[str, str]] | None:
    """The reading before fields were picked out of the groups in one call: a dict of all, then the message popped."""
    found = layout.regex.fullmatch(line.strip())
    if found is None:
        return None
    fields = dict(zip(layout.names, found.groups(), strict=True))
    fields = {name: value for name, value in fields.items() if value is not None}
    message = fields.pop(MESSAGE_FIELD)
    return message, fields


words = st.sampled_from(["2015-10-18", "18:01:47", "[42]", "INFO", "a.b.C:", "|", ":", "-", "  ", "x", "[", "]",
                         "sshd[7]:", "@3]", "\t", "081109", "203615"])


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(LAYOUTS), parts=st.lists(words, max_size=12))
def test_match_reads_what_the_plain_reading_reads(fmt: str, parts: list[str]) -> None:
    layout = LogFormat(fmt)
    line = " ".join(parts)
    got = layout.match(line)
    assert got == plain_match(layout, line)
    if got is not None:
        assert list(got[1]) == [name for name in layout.names if name in got[1]]  # the layout's order


def test_match_on_real_lines_of_each_layout() -> None:
    layout = LogFormat("<Date> <Time> <Pid> <Level> <Component>: <Content>")
    line = "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_1 terminating"
    assert layout.match(line) == ("PacketResponder 1 for block blk_1 terminating", {
        "Date": "081109", "Time": "203615", "Pid": "148", "Level": "INFO", "Component": "dfs.DataNode$PacketResponder"})
    assert LogFormat("<Time> <Content>").match("12:00 hello world") == ("hello world", {"Time": "12:00"})
    assert LogFormat("<Content>").match("  hello  ") == ("hello", {})


def test_groups_named_after_the_fields_only_when_every_name_can_be_one() -> None:
    assert LogFormat("<Date> <Time> <Content>").regex.groupindex.keys() == {"Date", "Time", "Content"}
    assert LogFormat("<host.name> <Content>").regex.groupindex.keys() == {"lw0", "lw1"}
    assert LogFormat("<host.name> <Content>").match("h1 hi") == ("hi", {"host.name": "h1"})
