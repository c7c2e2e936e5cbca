"""The miner's Drain (:class:`MaskedDrain`): masked similarity, and its cluster choice without comparing a
message with every cluster of its leaf.

Drain compares a message with every cluster in its prefix-tree leaf. Lines whose first words are all
different (a burst of unrelated lines, high-cardinality junk) end up in one ``<*>`` leaf per length, and each
new line is compared with all of them: a burst of n such lines costs n^2/2 comparisons (5,000 random lines
took about 17 s). :class:`ClusterIndex` keeps, per template length, which clusters have word w at position p
(posting lists), so only clusters that share enough positions with the message to reach the similarity
threshold are compared. The choice is exactly Drain's (:meth:`Drain.fast_match`): the highest similarity,
then the most parameters, then the earliest in the leaf, and None below the threshold: a cluster sharing
fewer positions cannot reach the threshold, so it can win nothing.

Templates only ever generalise (a word becomes ``<*>``), so a posting can be stale (the word is gone) but
never missing once the changed cluster is added again: candidates are checked against their current
template. The index is derived from the clusters, built on first use (after a state is loaded too), never
saved.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from drain3.drain import Drain, LogCluster, Node

from pipeline.stages.masking import MASK

# Leaves with at most this many clusters are scanned as Drain scans them (cheaper than the index).
LEAF_SCAN = 32
_LEAF_SETS = 4096


def seq_distance(template: Sequence[str], tokens: Sequence[str], include_params: bool) -> tuple[float, int]:
    """Drain's similarity of a message to a template, a position masked in both counting as equal."""
    if not template:
        return 1.0, 0
    sim = params = 0
    for tpl_tok, tok in zip(template, tokens, strict=True):
        if tpl_tok == MASK:
            params += 1
            if include_params or tok == MASK:
                sim += 1
        elif tpl_tok == tok:
            sim += 1
    return sim / len(template), params


class ClusterIndex:
    """Posting lists ``(length, position, word) -> cluster ids`` over every template, masks included."""

    __slots__ = ("clusters", "postings", "leaf_sets", "by_length")
    leaf_sets: dict[int, tuple[Sequence[int], set[int]]]
    by_length: dict[int | str, tuple[Node, tuple[int, ...]]]  # the miner's cache of ids per template length

    def __init__(self, clusters: Mapping[int, LogCluster | None]) -> None:
        self.clusters = clusters
        self.postings: dict[tuple[int, int, str], set[int]] | None = None
        self.leaf_sets = {}
        self.by_length = {}

    def add(self, cluster: LogCluster) -> None:
        """Index a new or changed cluster (its current template; older postings may stay)."""
        if self.postings is None:
            return  # not built yet: it will be, from the clusters as they are then
        tokens = cluster.log_template_tokens
        n = len(tokens)
        postings = self.postings
        cid = cluster.cluster_id
        for p, tok in enumerate(tokens):
            ids = postings.get((n, p, tok))
            if ids is None:
                postings[(n, p, tok)] = {cid}
            else:
                ids.add(cid)

    def _built(self) -> dict[tuple[int, int, str], set[int]]:
        if self.postings is None:
            self.postings = {}
            for cluster in list(self.clusters.values()):
                if cluster is not None:
                    self.add(cluster)
        return self.postings

    def _leaf(self, cluster_ids: Sequence[int]) -> set[int]:
        """The leaf's ids as a set. A leaf only grows at its end (:func:`add_to_tree`) or is replaced by a new
        list (a merge detaches clusters), so the set is kept per list object and extended by its new tail."""
        key = id(cluster_ids)
        entry = self.leaf_sets.get(key)
        if entry is not None and entry[0] is cluster_ids:
            members = entry[1]
            if len(members) < len(cluster_ids):
                members.update(cluster_ids[len(members):])
            if len(members) == len(cluster_ids):
                return members
        if len(self.leaf_sets) >= _LEAF_SETS:
            self.leaf_sets.clear()
        members = set(cluster_ids)
        self.leaf_sets[key] = (cluster_ids, members)
        return members

    def best(self, drain: Drain, cluster_ids: Sequence[int], tokens: Sequence[str], sim_th: float,
             include_params: bool) -> LogCluster | None:
        """What ``Drain.fast_match(cluster_ids, tokens, sim_th, include_params)`` returns, from candidates."""
        postings = self._built()
        n = len(tokens)
        shared: dict[int, int] = {}
        for p, tok in enumerate(tokens):
            for ids in (postings.get((n, p, tok)), postings.get((n, p, MASK)) if include_params and tok != MASK
                        else None):
                if ids:
                    for cid in ids:
                        shared[cid] = shared.get(cid, 0) + 1
        needed = sim_th * n - 1e-9
        leaf = self._leaf(cluster_ids)
        best: LogCluster | None = None
        best_key: tuple[float, int] = (-1.0, -1)
        ties: list[LogCluster] = []
        for cid, count in shared.items():
            if count < needed or cid not in leaf:
                continue
            cluster = self.clusters.get(cid)
            if cluster is None:
                continue
            key = drain.get_seq_distance(cluster.log_template_tokens, tokens, include_params)
            if key > best_key:
                best, best_key, ties = cluster, key, []
            elif key == best_key:
                ties.append(cluster)
        if best is None or best_key[0] < sim_th:
            return None
        if ties:  # Drain keeps the first of equals in leaf order
            position = {cid: i for i, cid in enumerate(cluster_ids)} if len(ties) > 8 else None
            for other in ties:
                if position is not None:
                    if position[other.cluster_id] < position[best.cluster_id]:
                        best = other
                elif cluster_ids.index(other.cluster_id) < cluster_ids.index(best.cluster_id):
                    best = other
        return best


class MaskedDrain(Drain):
    """Drain whose similarity counts a position masked in both template and message as equal.

    Clusters in ``exclude`` are invisible to matching (the frozen clusters of a warm start while learning).
    Its matching goes through :class:`ClusterIndex` in crowded leaves: exactly Drain's choice, without comparing
    the message with every cluster there.
    """

    exclude: frozenset[int] = frozenset()
    index: ClusterIndex

    def add_log_message(self, content: str) -> tuple[LogCluster, str]:
        cluster, update = super().add_log_message(content)
        if update != "none":
            self.index.add(cluster)
        return cluster, update

    def fast_match(self, cluster_ids: Any, tokens: Any, sim_th: float, include_params: bool) -> LogCluster | None:
        if self.exclude:
            cluster_ids = [cid for cid in cluster_ids if cid not in self.exclude]
        if len(cluster_ids) <= LEAF_SCAN:
            return super().fast_match(cluster_ids, tokens, sim_th, include_params)
        return self.index.best(self, cluster_ids, tokens, sim_th, include_params)

    def get_seq_distance(self, seq1: Any, seq2: Any, include_params: bool) -> tuple[float, int]:
        return seq_distance(seq1, seq2, include_params)

    def add_seq_to_prefix_tree(self, root_node: Node, cluster: LogCluster) -> None:
        add_to_tree(self, root_node, cluster)
        self.index.by_length.clear()

    def get_clusters_ids_for_seq_len(self, seq_fir: int | str) -> Collection[int]:
        # Every unknown line at inference asks for all clusters of its length (drain3's fallback search):
        # kept until a cluster is added (a merge adds its target back), instead of a walk per line.
        cached = self.index.by_length.get(seq_fir)
        if cached is None or cached[0] is not self.root_node:
            cached = self.index.by_length[seq_fir] = (self.root_node,
                                                      tuple(super().get_clusters_ids_for_seq_len(seq_fir)))
        return cached[1]


def add_to_tree(drain: Drain, root_node: Node, cluster: LogCluster) -> None:
    """``Drain.add_seq_to_prefix_tree``, appending to the leaf in place.

    drain3 rebuilds the leaf's list on every new cluster to drop ids its LRU cache evicted (``max_clusters``);
    the miner never bounds drain3's map (its own cap refuses new clusters instead) and removes a cluster only by
    detaching it from every leaf first (:func:`pipeline.stages.template_tree.merge_clusters`), so that rebuild
    finds nothing to drop and only costs a pass over the leaf per new cluster (quadratic on a burst).
    """
    tokens = cluster.log_template_tokens
    token_count = len(tokens)
    node = root_node.key_to_child_node.get(str(token_count))
    if node is None:
        node = root_node.key_to_child_node[str(token_count)] = Node()
    if token_count == 0:
        node.cluster_ids = [cluster.cluster_id]
        return
    param, limit = drain.param_str, drain.max_children
    depth = 1
    for token in tokens:
        if depth >= drain.max_node_depth or depth >= token_count:
            ids = node.cluster_ids
            if isinstance(ids, list):
                ids.append(cluster.cluster_id)
            else:  # a leaf that is not a list (never made by drain3 or us): as drain3 does it
                node.cluster_ids = [*ids, cluster.cluster_id]
            return
        children = node.key_to_child_node
        if token in children:
            node = children[token]
        elif drain.parametrize_numeric_tokens and drain.has_numbers(token):
            node = children.get(param) or children.setdefault(param, Node())
        elif param in children:
            node = children.setdefault(token, Node()) if len(children) < limit else children[param]
        elif len(children) + 1 < limit:
            node = children[token] = Node()
        elif len(children) + 1 == limit:
            node = children[param] = Node()
        else:
            node = children[param]
        depth += 1
