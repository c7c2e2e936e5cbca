"""Which entity (a block, host, service or request) a log record belongs to.

``--entity-regex R``: every distinct match of R in the message is an entity, so one line that
mentions two blocks counts in both blocks' windows. With a named group ``(?P<name>...)`` the entity
field is that name and the entity id is the group's text; otherwise the field is ``message`` and the
id is the whole match.

``--entity-field NAME``: the value of a decoded field (``host.name``, ``Component``).

Both given: the regex wins for lines it matches, the field is the fallback. Neither given: one global
entity (field ``all``, id ``*``), which with tumbling windows gives "the whole stream per minute".
A record with no entity under the chosen rule is counted by the caller, not windowed.
"""

from __future__ import annotations

import re

from pipeline.errors import LogwardenError
from pipeline.records import LogRecord

GLOBAL_ENTITY = ("all", "*")


class EntityExtractor:
    def __init__(self, regex: str | None = None, field: str | None = None) -> None:
        self.regex = regex
        self.field = field
        try:
            self._pattern = re.compile(regex) if regex else None
        except re.error as exc:
            raise LogwardenError(f"--entity-regex {regex!r} is not a valid regex: {exc}") from None
        group_names = list(self._pattern.groupindex) if self._pattern else []
        self._group = group_names[0] if group_names else None
        self._regex_field = self._group or "message"
        # findall returns the whole match when the regex has no group and the group's value when it has one (the
        # named one): one call into C per record instead of a Python loop over match objects
        pattern = self._pattern
        self._findall = pattern.findall if pattern is not None and (
            pattern.groups == 0 or (pattern.groups == 1 and self._group is not None)) else None

    def entities(self, record: LogRecord) -> list[tuple[str, str]]:
        """(entity field, entity id) pairs for ``record``, in first-seen order, without repeats."""
        if self._pattern is not None:
            found: dict[str, None]
            if self._findall is not None:  # the values findall gives are those the loop below would read
                values = self._findall(record.message)
                if len(values) == 1 and values[0]:  # the common case, one entity: no dict to drop repeats
                    return [(self._regex_field, values[0])]
                found = dict.fromkeys(filter(None, values))
            else:
                found = {}
                for match in self._pattern.finditer(record.message):
                    value = match.group(self._group) if self._group else match.group(0)
                    if value:
                        found[value] = None
            if found:
                return [(self._regex_field, value) for value in found]
        if self.field is not None:
            value = record.fields.get(self.field)
            if value is not None and value != "":
                return [(self.field, str(value))]
            return []
        if self._pattern is not None:
            return []
        return [GLOBAL_ENTITY]
