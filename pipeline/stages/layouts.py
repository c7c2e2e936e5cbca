"""Layouts: a logparser-style ``--log-format`` compiled to a regex that matches in linear time.

See :class:`LogFormat` for the syntax and the matching rule. :mod:`pipeline.stages.decoding` uses it for
every plain-text line, in ``detect`` and in the worker alike, so one line's matching time is bounded by its
length: a line that does not fit the layout cannot stall a partition. :func:`check_layout_matches` is the CLI's
early check that a layout fits the input at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Protocol, TypeAlias

from pipeline.errors import FormatError
from pipeline.records import RawLine

MESSAGE_FIELD = "Content"
_FIELD = re.compile(r"<([^<>]+)>")


@dataclass(frozen=True, slots=True)
class _Field:
    name: str


# A parsed layout is a list of items: a field, a literal character, _WS (a run of whitespace) or an optional
# part (a tuple of items). _Rest is what follows a point: the remaining items of each enclosing part.
_WS = "\\s"  # two characters, so never a literal (those are one character each)
_Item: TypeAlias = "str | _Field | tuple[_Item, ...]"
_Rest: TypeAlias = "tuple[Sequence[_Item], ...]"
_END = "end"
_NEXT = "field"


class LogFormat:
    """A logparser-style line layout, e.g. ``'<Date> <Time> <Pid> <Level> <Component>: <Content>'``.

    The rule (one for every layout): ``<Name>`` is a field (names may contain dots, ``<host.name>``); a run
    of whitespace matches one or more whitespace characters; ``( ... )?`` is an optional part; ``\\x`` is
    the character x; every other character is itself, so ``<Time>|<Pid>|<Content>`` needs no escapes while
    Loghub's published layouts (``\\[<Pid>\\]``, ``\\|``, ``(\\[<PID>\\])?``) keep working as written.
    A backslash before a letter or digit (``\\S``, ``\\d``) is regex syntax, which layouts do not take:
    it is rejected with a :class:`FormatError`, as are two fields with nothing between them.

    Matching is linear in the line length, without backtracking: lines are stripped, then each field
    ends at the first place where the layout text that follows it (up to the next field, through an
    optional part or past it) fits; the last field takes the rest of the line up to the layout's trailing
    text; an optional part is taken when its text fits where it stands. A line that cannot be read that
    way does not match (the decoder keeps it whole as ``unmatched``). On well-formed lines this reads the
    same fields as logparser's lazy ``.*?`` regexes (Zhu et al., ICSE-SEIP 2019; all eight ``loghub-2k``
    systems decode identically), which on a line that does not fit backtrack in polynomial time (a minute
    for 60 words against HDFS's layout). A field may span line breaks (a multi-line Kafka message).
    """

    def __init__(self, fmt: str) -> None:
        if not fmt or not fmt.strip():
            raise FormatError("--log-format is empty")
        self.fmt = fmt
        items = _parse_layout(fmt)
        names = tuple(_field_names(items))
        if MESSAGE_FIELD not in names:
            raise FormatError(f"--log-format {fmt!r} has no <{MESSAGE_FIELD}> field (the message part)")
        if len(set(names)) != len(names):
            raise FormatError(f"--log-format {fmt!r} names a field twice")
        if any(isinstance(item, tuple) and MESSAGE_FIELD in _field_names(item) for item in _walk(items)):
            raise FormatError(f"--log-format {fmt!r}: <{MESSAGE_FIELD}> cannot be inside an optional part")
        self.names = names
        self._optional = any(isinstance(item, tuple) for item in items)
        # Fields named like identifiers (all of Loghub's) name their groups, so that a match's ``groupdict`` is the
        # fields dict, made in one C call (the decoder's hottest step on a layout); else the groups are numbered and
        # the fields other than the message are picked out of them. Either way the fields keep the layout's order.
        self._named = all(name.isidentifier() for name in names)
        self.regex = re.compile(_Compiler(fmt, items, names if self._named else None).pattern(), re.DOTALL)
        self._content = names.index(MESSAGE_FIELD)
        self._others = tuple(name for name in names if name != MESSAGE_FIELD)
        positions = [i for i, name in enumerate(names) if name != MESSAGE_FIELD]
        self._pick: Callable[[tuple[str | None, ...]], tuple[str | None, ...]] = (
            itemgetter(*positions) if len(positions) > 1
            else (lambda groups: tuple(groups[i] for i in positions)))

    @property
    def named(self) -> bool:
        """Whether the regex's groups are named after the fields (a match's ``groupdict`` is the fields dict)."""
        return self._named

    @property
    def optional(self) -> bool:
        """Whether the layout has an optional part (whose fields a match may leave out)."""
        return self._optional

    def match(self, line: str) -> tuple[str, dict[str, str]] | None:
        """``(message, fields)`` when the line fits; fields left empty by an optional part are omitted."""
        found = self.regex.fullmatch(line.strip())
        if found is None:
            return None
        if self._named:
            named = found.groupdict()
            if self._optional and None in named.values():  # an optional part left out (else nothing to drop)
                named = {name: value for name, value in named.items() if value is not None}
            return named.pop(MESSAGE_FIELD), named
        groups = found.groups()
        fields = dict(zip(self._others, self._pick(groups), strict=True))
        if self._optional:
            fields = {name: value for name, value in fields.items() if value is not None}
        return groups[self._content], fields  # type: ignore[return-value]  # never None: not in an optional part

    def __repr__(self) -> str:
        return f"LogFormat({self.fmt!r})"


def _parse_layout(fmt: str) -> list[_Item]:
    """The layout as items (see ``_Item``); raises FormatError for regex syntax it does not take."""
    items: list[_Item] = []
    stack: list[list[_Item]] = []
    closes = _optional_spans(fmt)
    i = 0
    while i < len(fmt):
        char = fmt[i]
        field = _FIELD.match(fmt, i)
        if field:
            items.append(_Field(field.group(1)))
            i = field.end()
            continue
        if char == "\\":
            if i + 1 == len(fmt):
                raise FormatError(f"--log-format {fmt!r} ends with a lone backslash (write \\\\ for a backslash)")
            escaped = fmt[i + 1]
            if escaped.isalnum():
                raise FormatError(f"--log-format {fmt!r}: '\\{escaped}' is regex syntax; layouts take text "
                                  "literally (only \\ before punctuation, <Name> fields and ( ... )? are special)")
            items.append(escaped)
            i += 2
            continue
        if char == "(" and i in closes:
            stack.append(items)
            items = []
        elif stack and char == ")" and fmt[i + 1:i + 2] == "?" and i in closes.values():
            part = tuple(items)
            items = stack.pop()
            items.append(part)
            i += 1
        elif char.isspace():
            if not items or items[-1] != _WS:
                items.append(_WS)
        else:
            items.append(char)
        i += 1
    return items


def _optional_spans(fmt: str) -> dict[int, int]:
    """Positions of each ``(`` that opens an optional part ``( ... )?`` -> position of its ``)``."""
    spans: dict[int, int] = {}
    opened: list[int] = []
    i = 0
    while i < len(fmt):
        field = _FIELD.match(fmt, i)
        if field:
            i = field.end()
            continue
        char = fmt[i]
        if char == "\\":
            i += 2
            continue
        if char == "(":
            opened.append(i)
        elif char == ")" and opened:
            start = opened.pop()
            if fmt[i + 1:i + 2] == "?":
                spans[start] = i
        i += 1
    return spans


def _walk(items: Sequence[_Item]) -> Iterator[_Item]:
    for item in items:
        yield item
        if isinstance(item, tuple):
            yield from _walk(item)


def _field_names(items: Sequence[_Item]) -> list[str]:
    return [item.name for item in _walk(items) if isinstance(item, _Field)]


class _Compiler:
    """Builds the linear-time regex of a parsed layout (see :class:`LogFormat` for the rule)."""

    def __init__(self, fmt: str, items: list[_Item], group_names: Sequence[str] | None = None) -> None:
        """``group_names``: each field's group name in order (default ``lw0``, ``lw1``, ...)."""
        self.fmt = fmt
        self.items = items
        self.index = 0
        self.group_names = group_names

    def pattern(self) -> str:
        return self._seq(self.items, ())

    def _seq(self, items: Sequence[_Item], after: _Rest) -> str:
        out = []
        for position, item in enumerate(items):
            rest: _Rest = (items[position + 1:], *after)
            if isinstance(item, _Field):
                out.append(self._field(item, rest))
            elif isinstance(item, tuple):
                out.append(f"(?:{self._seq(item, rest)})?+" if item else "")
            elif item == _WS:
                out.append(r"\s++")
            else:
                out.append(re.escape(item))
        return "".join(out)

    def _field(self, field: _Field, rest: _Rest) -> str:
        group = f"(?P<{self.group_names[self.index] if self.group_names else f'lw{self.index}'}>"
        self.index += 1
        follows = _follows(rest)
        if any(not atoms and end == _NEXT for atoms, end in follows):
            names = [f"<{field.name}>", "the next field"]
            raise FormatError(f"--log-format {self.fmt!r} has nothing between {names[0]} and "
                              f"{'<' + _next_field(rest) + '>' if _next_field(rest) else names[1]}")
        if follows == [((), _END)]:
            return group + ".*)"
        # The field stops before the first text that follows it (the end of the line needs no lookahead).
        # Units: a possessive run of characters that cannot start a stop (the fast path), one stop
        # character where its text does not follow, a whitespace run where no text led by whitespace follows.
        lit = [(atoms, end) for atoms, end in follows if atoms and atoms[0] != _WS]
        ws = [_lookahead(atoms[1:], end) for atoms, end in follows if atoms and atoms[0] == _WS]
        stops = "".join(dict.fromkeys(re.escape(atoms[0]) for atoms, _ in lit))
        # Each unit but the first ends with the fast run too: one regex iteration per word, not two.
        run = f"[^{stops}]" if not ws else f"[^\\s{stops}]"
        units = [run + "++"]
        if lit:
            units.append(f"(?!{'|'.join(_lookahead(atoms, end) for atoms, end in lit)})[{stops}]{run}*+")
        if ws and "" not in ws:  # a field followed by whitespace and then a field cannot hold whitespace
            units.append(r"\s++" + f"(?!{'|'.join(ws)}){run}*+")
        return group + f"(?:{'|'.join(units)})*+)"


def _follows(rest: _Rest) -> list[tuple[tuple[str, ...], str]]:
    """Each literal text that can follow a point, up to the next field or the end: (atoms, _NEXT | _END)."""
    if not rest:
        return [((), _END)]
    head, *tail = rest
    if not head:
        return _follows(tuple(tail))
    item, remaining = head[0], (tuple(head[1:]), *tail)
    if isinstance(item, _Field):
        return [((), _NEXT)]
    if isinstance(item, tuple):
        return _follows((item, *remaining)) + _follows(tuple(remaining))
    found = []
    for atoms, end in _follows(tuple(remaining)):
        if item == _WS and atoms[:1] == (_WS,):
            found.append((atoms, end))
        else:
            found.append(((item, *atoms), end))
    return list(dict.fromkeys(found))


def _next_field(rest: _Rest) -> str:
    for part in rest:
        for item in _walk(part):
            if isinstance(item, _Field):
                return str(item.name)
    return ""


def _lookahead(atoms: Sequence[str], end: str) -> str:
    """The regex that tells a field to stop: the text that follows it (one whitespace is enough before a
    field, since that field may be anything)."""
    out = [r"\s++" if atom == _WS else re.escape(atom) for atom in atoms]
    if end == _NEXT and out and out[-1] == r"\s++":
        out[-1] = r"\s"
    return "".join(out) + (r"\Z" if end == _END else "")


class _Matches(Protocol):
    """What the check needs of a layout: a :class:`LogFormat` or a preset's (``presets.Layout``)."""

    def match(self, line: str) -> tuple[str, dict[str, str]] | None: ...


def check_layout_matches(
    log_format: _Matches, sample_lines: Iterable[RawLine | str | bytes], *, source: str | None = None
) -> int:
    """How many sample lines fit ``--log-format``; raises FormatError when there were lines and none fit.

    The CLI calls this on the first lines of the input (see :func:`pipeline.sources.peek_lines`) so a wrong
    format fails at once with a clear message instead of producing a model made of ``unmatched`` lines.
    ``log_format``: a :class:`LogFormat` or a preset's layout.
    """
    total = matched = 0
    first = None
    for item in sample_lines:
        if isinstance(item, RawLine):
            source = source or item.origin
            item = item.data
        text = item.decode(errors="replace") if isinstance(item, bytes) else item
        total += 1
        if first is None and text.strip():
            first = text.strip()
        if log_format.match(text) is not None:
            matched += 1
    if total and not matched:
        shown = first if first is None or len(first) <= 200 else first[:200] + "..."
        raise FormatError(
            f"--log-format matched none of the first {total} lines of {source or 'the input'}; first line was: {shown}"
        )
    return matched
