"""A memo bounded by the size of what it holds, not only by its number of entries.

The template stages memoise per message (logs repeat their messages, so most lines need no masking or tree
search). A bound on entries alone is not a bound on memory: a stream of long unique lines (64 KiB each, the line
cap) would keep 100,000 of them, gigabytes, and a worker would be killed for memory by input it is meant to
survive. So every memo here counts the characters of its keys and starts afresh when either bound is passed, and
a key longer than a small share of the budget is not kept at all (a message that long rarely repeats, and one
would evict thousands of short ones). Clearing is all-or-nothing, as before: cheaper than an LRU on the hot
path, and a memo refills within a few thousand lines.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Final, Generic, Literal, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class _Missing(enum.Enum):
    MISSING = 0


MISSING: Final = _Missing.MISSING  # what :meth:`Memo.get` returns for a key it does not hold (None is a value)


class Memo(Generic[K, V]):
    """A dict of at most ``max_entries`` entries whose keys hold at most ``max_chars`` characters in all."""

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.max_key_chars = max(1, max_chars // 256)
        self._data: dict[K, V] = {}
        self._chars = 0
        # ``find(key, MISSING)`` is :meth:`get` as the dict's own C method, for the hottest look-ups (the dict is
        # never replaced, only cleared, so the bound method stays the memo's)
        self.find: Callable[[K, V | Literal[_Missing.MISSING]], V | Literal[_Missing.MISSING]] = self._data.get

    def __setstate__(self, state: dict[str, object]) -> None:
        """A copy or unpickled memo binds ``find`` to its own dict (a bound builtin method copies as itself)."""
        self.__dict__.update(state)
        self.find = self._data.get

    def get(self, key: K) -> V | Literal[_Missing.MISSING]:
        """The value for ``key``, else :data:`MISSING`."""
        return self._data.get(key, MISSING)

    def put(self, key: K, value: V, chars: int) -> None:
        """Keep ``value`` for ``key``, whose size is ``chars`` characters (not kept when too long)."""
        if chars > self.max_key_chars:
            return
        if len(self._data) >= self.max_entries or self._chars + chars > self.max_chars:
            self.clear()
        self._data[key] = value
        self._chars += chars

    def clear(self) -> None:
        self._data.clear()
        self._chars = 0

    @property
    def chars(self) -> int:
        return self._chars

    def __len__(self) -> int:
        return len(self._data)
