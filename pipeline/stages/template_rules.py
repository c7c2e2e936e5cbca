"""The evidence the template miner keeps per cluster position, and the rules that read it.

Drain generalises a word position at the first difference it sees, and the masker
(:mod:`pipeline.stages.masking`) guesses from its shape alone that a word with a digit is a variable.
Both are guesses made one line at a time. :class:`ClusterStats` keeps, for every position of a
cluster, what was really seen there over all its lines, and the rules below overrule the guesses
where that evidence is strong. Every rule is about how log statements are written, never about one
system:

* **binary choice**: exactly two different words seen at a generalised position (``startup`` /
  ``shutdown``), unless one is the other's masked form (``chdir(<*>)``/``chdir(pwd)``): a variable
  shows a third value soon enough. The position is a constant: one template per word.
* **enum**: every word seen is an UPPER_CASE identifier (``RUNNING``, ``FAIL_TASK_CLEANUP``), the way
  code prints states and types, and there are at most ``max_enum_values`` of them.
* **few words over many lines**: at most ``max_enum_values`` different words, seen on at least
  ``lines_per_word`` lines per word on average, none of them rare (each on ``min_word_lines`` lines
  or more), as ``user=root`` / ``user=guest`` / ``user=test`` over hundreds of lines. A variable keeps
  bringing new values, and the values seen only once or twice are the trace it leaves (they are what
  the Good-Turing and Chao1 estimates of unseen values are made of); a closed set of words chosen by
  the code is printed again and again.
* **digits that never vary**: a masked token (it holds a digit) that was the very same word on at least
  ``fixed_digit_lines`` lines (``uid=0``, ``[1]``, ``jk2_init()``) is put back as it was written: the
  masker guessed "variable" from its shape, the lines say it is part of the text. Only small numbers
  (runs of at most three digits: codes, flags, counts, versions) are put back, never a word masked as
  a whole by its shape (a path, a host name, an IPv6 or MAC address) or holding an IPv4 address:
  longer numbers are ports, sizes, process and line numbers and ids, which change from one run or
  deployment to the next even when a training set never shows it, and a word put back makes every
  line with another value there an unseen template.

The first-word rule (a first word with many values does not split a template) lives in the miner,
:mod:`pipeline.stages.templates`, because it changes which cluster a line joins; its evidence is
position 0 of these statistics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipeline.stages.masking import MASK, shape

_ENUM = re.compile(r"[^\w<]*[A-Z][A-Z_]*[A-Z][^\w<]*")
_DIGIT = re.compile(r"\d")
_ADDRESS_OR_ID = re.compile(r"\d{4}|\d+\.\d+\.\d+\.\d+")
_WHOLE_TOKEN_SHAPES = ("path", "hexseq", "host")


@dataclass(frozen=True, slots=True)
class MinerConfig:
    """Template miner parameters; the defaults are meant for any system, without tuning.

    ``sim_th`` is Drain's similarity threshold. Because the masker already removed most variables,
    results hardly move between 0.4 and 0.8; 0.6 sits in the middle. ``depth`` 4 routes on the
    first token, as drain3 does by default (deeper trees split templates that start with a variable
    word). ``max_children`` is drain3's default. The other fields switch and size the rules of
    :mod:`pipeline.stages.template_rules` and the first-word merge of the miner:
    ``lines_per_word`` 10 asks for ten times more lines than words (three words need 30 lines) and
    ``min_word_lines`` 3 for every word to be seen on three lines or more; ``fixed_digit_lines`` 20
    for a digit word to be seen unchanged on twenty lines. First words merge beyond
    ``max_enum_values`` different ones. ``max_clusters`` bounds the template state: once that many clusters
    exist, a line that fits none of them goes to one "other" template instead of a new cluster (a stream of
    high-cardinality junk cannot grow the state, or the model's vocabulary, without bound; real systems have
    hundreds to a few thousand templates).
    """

    sim_th: float = 0.6
    depth: int = 4
    max_children: int = 100
    split_binary: bool = True
    split_enums: bool = True
    max_enum_values: int = 12
    split_frequent: bool = True
    lines_per_word: int = 10
    keep_fixed_digits: bool = True
    fixed_digit_lines: int = 20
    min_word_lines: int = 3
    merge_first_words: bool = True
    max_clusters: int = 50_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.sim_th <= 1.0:
            raise ValueError(f"sim_th must be within [0, 1], got {self.sim_th}")
        if self.depth < 3:
            raise ValueError(f"depth must be at least 3, got {self.depth}")
        if self.max_children < 2:
            raise ValueError(f"max_children must be at least 2, got {self.max_children}")
        if self.max_enum_values < 2:
            raise ValueError(f"max_enum_values must be at least 2, got {self.max_enum_values}")
        if self.lines_per_word < 2:
            raise ValueError(f"lines_per_word must be at least 2, got {self.lines_per_word}")
        if self.fixed_digit_lines < 2:
            raise ValueError(f"fixed_digit_lines must be at least 2, got {self.fixed_digit_lines}")
        if self.max_clusters < 1:
            raise ValueError(f"max_clusters must be at least 1, got {self.max_clusters}")
        if self.min_word_lines < 1:
            raise ValueError(f"min_word_lines must be at least 1, got {self.min_word_lines}")


# The rules a state written before they existed (state version 1) was built with: loading such a state
# with these keeps every template text, so every template id, as it was.
RULES_OFF = {"split_frequent": False, "keep_fixed_digits": False, "merge_first_words": False}


class ClusterStats:
    """Words seen per position of one cluster, their joint combinations, and the raw words.

    ``values[p]`` counts the (masked) words at position p, or is None once more than ``cap`` distinct
    words were seen (a variable: no longer tracked). ``joint`` counts the token tuples with untracked
    positions replaced by the mask, so the word combinations that really occurred can be listed.
    ``raw[p]`` is the raw word every line had at position p so far, or None once two lines differed
    there (or a line had no single raw word there). ``lines`` is the number of lines.
    """

    __slots__ = ("values", "joint", "raw", "lines")

    def __init__(
        self,
        values: list[dict[str, int] | None],
        joint: dict[tuple[str, ...], int],
        raw: list[str | None],
        lines: int,
    ) -> None:
        self.values = values
        self.joint = joint
        self.raw = raw
        self.lines = lines

    @classmethod
    def empty(cls, tokens: list[str], raw: list[str | None]) -> ClusterStats:
        return cls([{} for _ in tokens], {}, list(raw), 0)

    def add(self, tokens: list[str], raw: list[str | None], cap: int) -> tuple[str, ...]:
        """Count one line; return its key (its tokens with untracked positions masked)."""
        overflow = False
        for p, tok in enumerate(tokens):
            counts = self.values[p]
            if counts is not None:
                counts[tok] = counts.get(tok, 0) + 1
                if len(counts) > cap:
                    self.values[p] = None
                    overflow = True
            seen = self.raw[p]
            if seen is not None and seen != raw[p]:
                self.raw[p] = None
        if overflow:
            self._reproject()
        self.lines += 1
        key = self.project(tokens)
        self.joint[key] = self.joint.get(key, 0) + 1
        return key

    def project(self, tokens: Any) -> tuple[str, ...]:
        if None not in self.values:
            return tuple(tokens)
        return tuple(MASK if c is None else t for t, c in zip(tokens, self.values, strict=True))

    def _reproject(self) -> None:
        joint: dict[tuple[str, ...], int] = {}
        for key, n in self.joint.items():
            k = self.project(key)
            joint[k] = joint.get(k, 0) + n
        self.joint = joint

    @classmethod
    def merged(cls, parts: list[ClusterStats], cap: int) -> ClusterStats:
        """The statistics of one cluster made of ``parts`` (same length), as if it had learnt all lines."""
        first = parts[0]
        values: list[dict[str, int] | None] = []
        for p in range(len(first.values)):
            counts: dict[str, int] | None = {}
            for part in parts:
                seen = part.values[p]
                if seen is None or counts is None:
                    counts = None
                    continue
                for word, n in seen.items():
                    counts[word] = counts.get(word, 0) + n
            values.append(None if counts is None or len(counts) > cap else counts)
        raw = [r if all(part.raw[p] == r for part in parts) else None for p, r in enumerate(first.raw)]
        out = cls(values, {}, raw, sum(part.lines for part in parts))
        for part in parts:
            for key, n in part.joint.items():
                k = out.project(key)
                out.joint[k] = out.joint.get(k, 0) + n
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "joint": [[list(k), n] for k, n in self.joint.items()],
            "raw": self.raw,
            "lines": self.lines,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], length: int) -> ClusterStats:
        """Rebuild from :meth:`to_json`; a version-1 entry (no ``raw``) gets no raw words."""
        values = [None if v is None else {str(w): int(n) for w, n in v.items()} for v in data["values"]]
        joint = {tuple(str(t) for t in k): int(n) for k, n in data["joint"]}
        raw = [None if r is None else str(r) for r in data.get("raw", [None] * length)]
        lines = int(data.get("lines", sum(joint.values())))
        if len(values) != length or len(raw) != length or any(len(k) != length for k in joint):
            raise ValueError("token counts disagree")
        return cls(values, joint, raw, lines)


def instance_of(pattern: str, word: str) -> bool:
    """True when ``word`` is ``pattern`` with each mask standing for a non-empty text."""
    if MASK not in pattern:
        return False
    rx = ".+".join(re.escape(part) for part in pattern.split(MASK))
    return re.fullmatch(rx, word, re.S) is not None


def is_constant(counts: dict[str, int] | None, config: MinerConfig) -> bool:
    """Whether a generalised position holds a word chosen by the code rather than a variable."""
    if counts is None or MASK in counts or len(counts) < 2:
        return False
    words = list(counts)
    if any(instance_of(a, b) for a in words for b in words if a is not b):
        return False  # chdir(<*>) and chdir(pwd): one is the other's masked form, a variable
    if config.split_binary and len(words) == 2:
        return True
    if len(words) > config.max_enum_values:
        return False
    if config.split_enums and all(_ENUM.fullmatch(w) for w in words):
        return True
    return (
        config.split_frequent
        and sum(counts.values()) >= config.lines_per_word * len(words)
        and min(counts.values()) >= config.min_word_lines
    )


def kept_positions(template: tuple[str, ...], stats: ClusterStats, config: MinerConfig) -> tuple[int, ...]:
    """Generalised positions whose words are constants: each word gives its own template."""
    return tuple(p for p, tok in enumerate(template) if tok == MASK and is_constant(stats.values[p], config))


def fixed_words(template: tuple[str, ...], stats: ClusterStats, config: MinerConfig) -> dict[int, str]:
    """Masked positions put back as written: position -> the raw word every line had there."""
    if not config.keep_fixed_digits or stats.lines < config.fixed_digit_lines:
        return {}
    return {
        p: raw
        for p, (tok, raw) in enumerate(zip(template, stats.raw, strict=True))
        if raw is not None and MASK in tok and _restorable(raw)
    }


def _restorable(word: str) -> bool:
    """A word holding small numbers only, masked for its digits (not as an address or a path)."""
    return (
        _DIGIT.search(word) is not None
        and _ADDRESS_OR_ID.search(word) is None
        and shape(word) not in _WHOLE_TOKEN_SHAPES
    )
