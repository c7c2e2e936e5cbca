"""Work on drain3's prefix tree: JSON persistence and the first-word merge of the template miner.

drain3 routes a line through ``root -> token count -> first word(s) -> leaf`` and compares it only with
the clusters of its leaf. A template whose first word is a variable therefore gets one leaf, and one
cluster, per value. :func:`first_word_siblings` finds the clusters that differ from a new one mostly
by that first word, and :func:`merge_clusters` folds them into one cluster whose first position is
generalised and that sits in the ``<*>`` branch, where Drain sends first words it has no branch for.

These functions use drain3 internals (``Node.key_to_child_node``/``cluster_ids``,
``Drain.id_to_cluster``, ``get_clusters_ids_for_seq_len``, ``add_seq_to_prefix_tree``); the tests of
:mod:`pipeline.stages.templates` cover each of them, so an upgrade that changes them fails loudly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from drain3.drain import Drain, LogCluster, Node

from pipeline.stages.masking import MASK
from pipeline.stages.template_rules import ClusterStats, MinerConfig


def first_word_similarity(template: Sequence[str], other: Sequence[str]) -> float:
    """Drain's similarity of two templates of one length, first positions counted equal.

    Only equal words count in the rest, not two masks: two masked positions say nothing about two
    lines being one statement, and counting them lets short templates (``<*> <*>``) swallow every
    other of their length, one merge after another.
    """
    same = 1 + sum(a == b != MASK for a, b in zip(template[1:], other[1:], strict=True))
    return same / len(template)


class RestIndex:
    """Which clusters hold word w at position p (p >= 1) of a template of length n.

    It lets :func:`first_word_siblings` look only at clusters that share words with a new one, instead
    of every cluster of its length: a burst of unrelated lines would otherwise cost a scan per line on
    top of Drain's own. Templates only ever generalise (a word becomes ``<*>``), so an entry can be
    stale but never missing: candidates are checked against their current template. It is derived
    from the clusters, so it is rebuilt (on first use) rather than saved.
    """

    __slots__ = ("postings",)

    def __init__(self, clusters: Iterable[LogCluster]) -> None:
        self.postings: dict[tuple[int, int, str], list[int]] = {}
        for cluster in clusters:
            self.add(cluster)

    def add(self, cluster: LogCluster) -> None:
        tokens = cluster.log_template_tokens
        n = len(tokens)
        for p in range(1, n):
            if tokens[p] != MASK:
                self.postings.setdefault((n, p, tokens[p]), []).append(cluster.cluster_id)

    def candidates(self, tokens: Sequence[str], needed: int) -> list[int]:
        """Clusters that may share ``needed`` or more rest words with ``tokens``, in id order."""
        n = len(tokens)
        shared: dict[int, int] = {}
        for p in range(1, n):
            if tokens[p] != MASK:
                for cid in self.postings.get((n, p, tokens[p]), ()):
                    shared[cid] = shared.get(cid, 0) + 1
        return sorted(cid for cid, k in shared.items() if k >= needed)


def first_word_siblings(
    drain: Drain,
    cluster: LogCluster,
    stats: Mapping[int, ClusterStats],
    config: MinerConfig,
    index: RestIndex | None = None,
) -> list[LogCluster]:
    """The clusters to merge with a new ``cluster`` on its first word, or [] to leave it alone.

    A sibling has the same length and a similar rest (:func:`first_word_similarity` >= ``sim_th``)
    and starts with a word, or starts generalised with words seen there (an earlier merge). They are
    merged when, with ``cluster``, they show more than ``max_enum_values`` different first words:
    more than any closed set of words the rules accept, the point where any other position stops
    being tracked as a choice of words. Fewer first words stay apart, as Drain keeps them (messages
    often start with the name of a daemon or component, a constant of each statement). A
    cluster that starts generalised only because the masker masked its first word (``<*> bytes
    received``) is not a sibling: its first position holds values, not words.
    """
    template = cluster.log_template_tokens
    if len(template) < 2 or template[0] == MASK:
        return []
    siblings: list[LogCluster] = []
    words = {template[0]}
    many = False
    needed = math.ceil(config.sim_th * len(template) - 1e-9) - 1
    if index is None or needed <= 0:  # every cluster of the length
        ids = sorted(drain.get_clusters_ids_for_seq_len(len(template)))
    else:
        ids = index.candidates(template, needed)
    for cid in ids:
        other = drain.id_to_cluster.get(cid)
        if other is None or other is cluster:
            continue
        if first_word_similarity(template, other.log_template_tokens) < config.sim_th:
            continue
        first = other.log_template_tokens[0]
        if first != MASK:
            words.add(first)
        else:
            seen = stats[cid].values[0]
            if seen is None:
                many = True
            elif any(w != MASK for w in seen):
                words.update(w for w in seen if w != MASK)
            else:
                continue
        siblings.append(other)
    return siblings if many or len(words) > config.max_enum_values else []


def merge_clusters(drain: Drain, target: LogCluster, parts: Sequence[LogCluster]) -> None:
    """Make ``target`` the one cluster of ``parts`` (``target`` among them), first position generalised.

    Its template is Drain's generalisation of all their templates; the others leave the cluster map;
    every part leaves its leaf (emptied branches are pruned, so their first word now reaches the
    ``<*>`` branch) and ``target`` is put back where a template starting with ``<*>`` belongs.
    """
    tokens = list(parts[0].log_template_tokens)
    for part in parts[1:]:
        tokens = [a if a == b else MASK for a, b in zip(tokens, part.log_template_tokens, strict=True)]
    tokens[0] = MASK
    ids = {part.cluster_id for part in parts}
    length_node = drain.root_node.key_to_child_node[str(len(tokens))]
    _detach(length_node, ids)
    target.size = sum(part.size for part in parts)
    target.log_template_tokens = tuple(tokens)
    for part in parts:
        if part is not target:
            del drain.id_to_cluster[part.cluster_id]
    drain.add_seq_to_prefix_tree(drain.root_node, target)


def _detach(node: Node, ids: set[int]) -> None:
    """Remove ``ids`` from every leaf under ``node`` and prune the branches left empty."""
    node.cluster_ids = [cid for cid in node.cluster_ids if cid not in ids]
    for key, child in list(node.key_to_child_node.items()):
        _detach(child, ids)
        if not child.cluster_ids and not child.key_to_child_node:
            del node.key_to_child_node[key]


def node_to_json(node: Node) -> dict[str, Any]:
    return {
        "clusters": list(node.cluster_ids),
        "children": {key: node_to_json(child) for key, child in node.key_to_child_node.items()},
    }


def node_from_json(data: dict[str, Any]) -> Node:
    node = Node()
    node.cluster_ids = [int(i) for i in data["clusters"]]
    node.key_to_child_node = {str(k): node_from_json(v) for k, v in data["children"].items()}
    return node
