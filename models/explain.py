"""Explanations: which templates made a window look unlike normal, strongest reason first.

Every entry compares what the window holds with training: ``observed`` count vs ``expected`` (the mean
count in training windows), plus ``share``, the fraction of training windows that held the template.
The order follows the detector's own reasons (:mod:`models.detector`), so the first lines say why the
score is high:

1. templates **never seen** in training (``new``): the strongest single signal an SRE can act on ("this
   message has never been written before");
2. templates whose **presence is rare**: written here but held by few training windows, or missing here
   while nearly every training window holds them (rarity, :mod:`models.novelty`); and counts **outside
   the trained range** (range excess). Ranked by rarity plus half the range excess (a rare state first);
3. the remaining templates whose count deviates most from the mean, in units of the training standard
   deviation plus one (so that templates with no variance in training still rank by raw difference).

:func:`explain` is the reference, one window at a time; :func:`explain_batch` gives the same entries for a
batch of windows with one numpy pass over the batch's candidate columns (issue 14: explaining every window
one by one was about as costly as the rest of scoring). The values are the same floating-point operations
on the same numbers, element by element, and the order is the same total order, so the entries are equal,
not close (a property test compares the two).

Which *component* decided the window's score (``iforest``, ``rarity`` or ``excess``, see
:mod:`models.detector`) travels beside the entries as ``anomaly.reason``; :func:`reason_text` says it in
words. An ``iforest`` window may have no rare template at all: its entries are then the deviations of 3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.features import FeatureSpace

MIN_DEVIATION = 0.5
BATCH_CELLS = 1 << 18  # (windows x templates) cells explained at once: bounds the temporaries on wide vocabularies
NOVELTY_WEIGHT = 1.0  # rank a rare presence state above a count beyond the trained range of equal strength
RANGE_WEIGHT = 0.5
REASONS = {
    "iforest": "an unusual combination of template counts (isolation forest)",
    "rarity": "a template state few training windows were in (a rare, missing or new template)",
    "excess": "a count beyond what training windows wrote (range excess)",
}


def reason_text(component: str) -> str:
    """One sentence naming the component that made a window anomalous (``anomaly.reason``)."""
    return REASONS.get(component, component)


def holds_new(counts: Mapping[str, int], space: FeatureSpace, limit: int = 5) -> bool:
    """Whether :func:`explain` (and :func:`explain_batch`) of a window with ``counts`` holds a ``new`` entry: its first
    entries are those of the ids not in the trained vocabulary, so it does when there is one (and ``limit`` > 0).
    Cheaper than explaining: ``logwarden detect`` counts such windows among those it never documents."""
    return limit > 0 and not space.index_.keys() >= counts.keys()


def _candidates(counts: Mapping[str, int], space: FeatureSpace) -> list[int]:
    """Vocabulary columns worth a look: held by the window, or usually held by training windows."""
    index = space.index_
    cols = {index[tid] for tid in counts if tid in index}
    cols.update(space.usual_columns())
    return sorted(cols)


def explain(
    counts: Mapping[str, int],
    space: FeatureSpace,
    templates: Mapping[str, str],
    limit: int = 5,
) -> list[dict[str, Any]]:
    """Return up to ``limit`` explanation entries, most telling first.

    Each entry: ``id``, ``template``, ``observed``, ``expected`` (mean count in training windows,
    rounded to 2 decimals), ``new`` (True for a template not in the trained vocabulary) and ``share``
    (fraction of training windows holding the template, 0.0 for a new one).
    """
    index = space.index_
    entries: list[tuple[float, float, dict[str, Any]]] = []
    for tid, n in counts.items():
        if tid not in index:
            entry = {"id": tid, "template": templates.get(tid, ""), "observed": int(n), "expected": 0.0,
                     "new": True, "share": 0.0}
            entries.append((float("inf"), float("inf"), entry))
    cols = _candidates(counts, space)
    if cols:
        observed = np.array([counts.get(space.vocabulary_[c], 0) for c in cols], dtype=np.float64)
        reasons = np.zeros(len(cols))
        stats = space.template_stats()
        if stats is not None:
            sub = type(stats)(stats.n_windows, stats.present[cols], stats.low[cols], stats.high[cols])
            row = np.log1p(observed)[None, :]
            reasons = NOVELTY_WEIGHT * sub.rarity(row)[0] + RANGE_WEIGHT * sub.excess(row)[0]
        for k, col in enumerate(cols):
            tid = space.vocabulary_[col]
            expected = space.mean_[col]
            deviation = abs(observed[k] - expected) / (space.std_[col] + 1.0)
            if reasons[k] <= 0 and deviation < MIN_DEVIATION:
                continue
            share = space.presence_[col] / space.n_windows_ if stats is not None else None
            entry = {"id": tid, "template": templates.get(tid) or space.templates_.get(tid, ""),
                     "observed": int(observed[k]), "expected": round(expected, 2), "new": False,
                     "share": None if share is None else round(share, 4)}
            entries.append((float(reasons[k]), float(deviation), entry))
    entries.sort(key=lambda item: (-item[0], -item[1], item[2]["id"]))
    return [entry for _, _, entry in entries[:limit]]


@dataclass(frozen=True)
class _Columns:
    """Per-model values :func:`explain_batch` needs for every batch (derived from the space, never saved)."""

    key: tuple[int, ...]
    usual: np.ndarray  # bool per vocabulary column
    mean: np.ndarray
    std: np.ndarray
    id_rank: np.ndarray  # position of each column's id in sorted order: the final tie-break
    expected: list[float]  # round(mean, 2), as the entries hold it
    share: list[float | None]  # round(presence / n_windows, 4), None for a model saved without presence


def _columns(space: FeatureSpace) -> _Columns:
    stats = space.template_stats()
    key = (id(space.vocabulary_), id(space.mean_), id(space.std_), id(space.presence_), space.n_windows_,
           len(space.vocabulary_), id(stats))
    cached: _Columns | None = getattr(space, "_explain_columns", None)
    if cached is not None and cached.key == key:
        return cached
    width = len(space.vocabulary_)
    usual = np.zeros(width, dtype=bool)
    usual[space.usual_columns()] = True
    id_rank = np.empty(width, dtype=np.int64)
    id_rank[sorted(range(width), key=space.vocabulary_.__getitem__)] = np.arange(width)
    share: list[float | None] = ([round(space.presence_[col] / space.n_windows_, 4) for col in range(width)]
                                 if stats is not None else [None] * width)
    columns = _Columns(key, usual, np.asarray(space.mean_, dtype=np.float64), np.asarray(space.std_, dtype=np.float64),
                       id_rank, [round(mean, 2) for mean in space.mean_], share)
    object.__setattr__(space, "_explain_columns", columns)
    return columns


def explain_batch(
    counts: Sequence[Mapping[str, int]],
    space: FeatureSpace,
    templates: Sequence[Mapping[str, str]],
    limit: int = 5,
    raw: np.ndarray | None = None,
) -> list[list[dict[str, Any]]]:
    """:func:`explain` of every window (``counts[i]`` with ``templates[i]``), computed for the batch at once.

    ``raw`` is :meth:`FeatureSpace.count_matrix` of ``counts`` when the caller has it already (the scorer builds
    it for the feature rows): the window's held columns are then its non-zero cells, and no window's ids are
    looked up one by one again. Only a window holding a zero count (a known id with no line) is read id by id.
    """
    index = space.index_
    vocabulary = space.vocabulary_
    columns = _columns(space)
    stats = space.template_stats()
    if raw is None:
        raw = space.count_matrix(counts)
    news: list[list[dict[str, Any]]] = []
    zero_held: list[tuple[int, list[int]]] = []  # windows holding a known id with count 0: listed, yet not non-zero
    for row, (window, names) in enumerate(zip(counts, templates, strict=True)):
        if not index.keys() >= window.keys():  # walks the window's ids only (probes the index), builds nothing
            new = [{"id": tid, "template": names.get(tid, ""), "observed": int(window[tid]), "expected": 0.0,
                    "new": True, "share": 0.0} for tid in sorted(set(window).difference(index))]
            news.append(new[:limit])
        else:
            news.append([])
        if 0 in window.values():
            zero_held.append((row, [index[tid] for tid, n in window.items() if n == 0 and tid in index]))
    held = raw != 0
    for row, cols in zero_held:
        held[row, cols] = True
    candidates = np.flatnonzero(columns.usual | held.any(axis=0))
    width = len(candidates)
    step = max(1, BATCH_CELLS // max(width, 1))
    out: list[list[dict[str, Any]]] = []
    for start in range(0, len(counts), step):
        stop = start + step
        out.extend(_known_entries(raw[start:stop], held[start:stop], templates[start:stop], news[start:stop],
                                  candidates, columns, stats, vocabulary, space.templates_, limit))
    return out


def _known_entries(raw: np.ndarray, held: np.ndarray, templates: Sequence[Mapping[str, str]],
                   news: list[list[dict[str, Any]]], candidates: np.ndarray, columns: _Columns, stats: Any,
                   vocabulary: list[str], names: Mapping[str, str], limit: int) -> list[list[dict[str, Any]]]:
    """Each window's new entries, then its known entries in :func:`explain`'s order, up to ``limit``."""
    rows, width = raw.shape[0], len(candidates)
    observed = raw[:, candidates]
    listed = held[:, candidates]
    listed[:, columns.usual[candidates]] = True
    reasons = np.zeros((rows, width))
    if stats is not None and width:
        sub = type(stats)(stats.n_windows, stats.present[candidates], stats.low[candidates],
                          stats.high[candidates])
        logged = np.log1p(observed)
        reasons = NOVELTY_WEIGHT * sub.rarity(logged) + RANGE_WEIGHT * sub.excess(logged)
    deviation = np.abs(observed - columns.mean[candidates][None, :]) / (columns.std[candidates][None, :] + 1.0)
    keep = listed & ~((reasons <= 0) & (deviation < MIN_DEVIATION))
    quota = np.array([max(limit - len(new), 0) for new in news], dtype=np.int64)
    keep &= quota[:, None] > 0
    row_of, at_of = np.nonzero(keep)
    order = np.lexsort((columns.id_rank[candidates][at_of], -deviation[row_of, at_of], -reasons[row_of, at_of],
                        row_of))
    row_of, at_of = row_of[order], at_of[order]
    first = np.searchsorted(row_of, np.arange(rows))
    rank = np.arange(len(row_of)) - first[row_of]
    chosen = rank < quota[row_of]
    row_of, at_of = row_of[chosen], at_of[chosen]
    out = [list(new) for new in news]
    expected, share = columns.expected, columns.share
    for row, col, n in zip(row_of.tolist(), candidates[at_of].tolist(), observed[row_of, at_of].tolist(),
                           strict=True):
        tid = vocabulary[col]
        out[row].append({"id": tid, "template": templates[row].get(tid) or names.get(tid, ""),
                         "observed": int(n), "expected": expected[col], "new": False, "share": share[col]})
    return out
