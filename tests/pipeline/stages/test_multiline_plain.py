"""The joiner's plain-line shortcut (a held one-line record kept without a ``_Record``) against its general way.

``General`` is the same joiner with the shortcut switched off (``_plain_start`` always False), so every line
goes the way it went before the shortcut. Random interleavings of keyed and unkeyed lines of every kind that
matters to joining (record starts, indented and ``at`` lines, tracebacks and their chains, Java exceptions,
JSON, blank lines), timeouts, ``held_offset``, ``holding`` and flushes must give the same records, in the same
order, with the same stats.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.records import RawLine
from pipeline.stages.multiline import Joiner, joined

LINES = [b"081109 203615 INFO a", b"2024-01-01 x", b"plain words", b"  indented", b"\tat Foo.bar(Foo.java:1)",
         b"at Foo.bar", b"Traceback (most recent call last):", b'  File "x.py", line 1', b"ValueError: boom",
         b"During handling of the above exception, another exception occurred:", b"Caused by: x",
         b"java.lang.IllegalStateException: boom", b'{"a": 1}', b"", b"   ", b"\r\x0b", b"...", b"{not json",
         b"\xff\xfe invalid UTF-8 \xed\xa0\x80", b"x" * 65_536, b"  " + b"y" * 65_536]


def starts(text: str) -> bool:
    return text[:1].isdigit()


class General(Joiner):
    def _plain_start(self, data: bytes) -> bool:
        return False


push = st.tuples(st.just("push"), st.sampled_from(LINES), st.sampled_from([None, None, None, b"", b"k"]),
                 st.booleans(), st.floats(0, 10))
op = st.one_of(
    push, push, push, push, push, push,  # mostly lines: the states worth reaching take several in a row
    st.tuples(st.just("expire"), st.floats(0, 20), st.floats(0.5, 5)),
    st.tuples(st.just("flush")),
    st.tuples(st.just("held")),
)


def run(joiner: Joiner, ops: list[tuple[Any, ...]]) -> list[Any]:
    out: list[Any] = []
    for number, step in enumerate(ops, start=1):
        if step[0] == "push":
            _, data, key, truncated, now = step
            out.append(joiner.push(RawLine(data, "f", number, key, 1.0, truncated), now))
        elif step[0] == "expire":
            out.append(joiner.expire(step[1], step[2]))
        elif step[0] == "flush":
            out.append(joiner.flush())
        else:
            out.append((joiner.held_offset(), joiner.holding))
    out.append(joiner.flush())
    out.append(vars(joiner.stats))
    return out


@settings(max_examples=600, deadline=None)
@given(ops=st.lists(op, max_size=40), max_lines=st.integers(1, 4), max_bytes=st.sampled_from([8, 40, 1000]))
@example(ops=[("push", LINES[0], None, False, 0.0), ("push", LINES[6], None, False, 0.0),
              ("push", b"plain words", None, False, 0.0), ("push", b"", None, False, 0.0)],
         max_lines=4, max_bytes=1000)  # a traceback goes on past a line that would otherwise start a record
def test_plain_shortcut_equals_the_general_way(ops: list[tuple[Any, ...]], max_lines: int, max_bytes: int) -> None:
    fast = run(Joiner(starts, max_lines=max_lines, max_bytes=max_bytes), ops)
    assert fast == run(General(starts, max_lines=max_lines, max_bytes=max_bytes), ops)


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(op, max_size=30))
def test_with_a_start_regex_the_shortcut_stays_off(ops: list[tuple[Any, ...]]) -> None:
    fast = run(Joiner(starts, start=r"^\d"), ops)
    assert fast == run(General(starts, start=r"^\d"), ops)


def test_the_shortcut_is_taken_on_plain_lines() -> None:
    joiner = Joiner(starts)
    assert joiner.push(RawLine(b"1 a", "f", 1)) == []
    assert joiner._plain is not None and not joiner._queue
    assert [r.data for r in joiner.push(RawLine(b"2 b", "f", 2))] == [b"1 a"]
    assert joiner._plain is not None and not joiner._queue


def reference_joined(lines: list[RawLine], joiner: Joiner) -> list[RawLine]:
    """``joined`` as it was before it took ``push``'s plain case inline: ``push`` per line, a flush per origin."""
    out: list[RawLine] = []
    origin = None
    for raw in lines:
        if raw.origin != origin:
            out.extend(joiner.flush())
            origin = raw.origin
        out.extend(joiner.push(raw))
    out.extend(joiner.flush())
    return out


@settings(max_examples=400, deadline=None)
@given(lines=st.lists(st.tuples(st.sampled_from(LINES), st.sampled_from([None, None, None, b"", b"k"]),
                                st.booleans(), st.sampled_from(["f", "f", "g"])), max_size=40),
       max_lines=st.integers(1, 4), start=st.sampled_from([None, r"^\d"]))
def test_joined_with_the_plain_case_inline_equals_push_per_line(lines: list[tuple[bytes, bytes | None, bool, str]],
                                                                max_lines: int, start: str | None) -> None:
    raws = [RawLine(data, origin, number, key, 1.0, truncated)
            for number, (data, key, truncated, origin) in enumerate(lines, start=1)]
    fast_joiner, general_joiner = Joiner(starts, start=start, max_lines=max_lines), General(starts, start=start,
                                                                                            max_lines=max_lines)
    fast = list(joined(raws, fast_joiner))
    assert fast == reference_joined(raws, general_joiner) == reference_joined(raws, Joiner(starts, start=start,
                                                                                        max_lines=max_lines))
    assert vars(fast_joiner.stats) == vars(general_joiner.stats)
