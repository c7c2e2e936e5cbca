"""Template mining: Drain3 behind our masking, with template ids that are stable across processes.

How a message becomes a template
--------------------------------
1. :func:`pipeline.masking.mask_tokens_raw` masks variables (numbers, addresses, paths, ids, ...) and
   keeps the raw word of each masked token.
2. A drain3 ``Drain`` prefix tree (from ``drain3-improved``, the maintained fork of drain3 0.9.11)
   clusters the masked token lists. Positions masked in both the template and the message count as
   equal in its similarity, since the masker already decided they are the same parameter.
3. Drain routes a line by its first word, so a template whose first word is a variable (a user, a
   host, a thread name) would become one cluster per value and a new value at inference would match
   nothing. When a new cluster is created we look at the clusters of the same length whose other
   words are the same (:mod:`pipeline.stages.template_tree`); when together they show more first
   words than ``max_enum_values`` (more than any closed set of words the rules accept), they are
   merged into one cluster whose first position is generalised (it moves to Drain's ``<*>`` branch,
   where new first words land). Fewer first words stay apart, as Drain keeps them: messages often
   start with the name of the daemon or component that writes them. Merging loses nothing: the
   words seen at each position are kept, and step 4 still reads them.
4. :mod:`pipeline.stages.template_rules` reads the words counted at each position of a cluster and
   gives back a constant where the evidence says the position is a choice made by the code (two
   words, UPPER_CASE states, few words over many lines) and the raw word where a masked token never
   varied over many lines. The final template of a line is its Drain template with those positions
   filled from the line.

Template ids
------------
Drain3's cluster ids are integers handed out in arrival order: another worker, a restart or a
retraining numbers the same template differently, so they cannot name the columns of a model.
:func:`template_id` is instead ``"T"`` + the first 10 hex digits (40 bits) of the BLAKE2b hash of the
final template text. Consequences:

* **Ids are final only once training is over.** While lines are learnt a template can change: Drain
  generalises (``... port 22`` -> ``... port <*>``), clusters merge on their first word, and the count
  rules change their verdict as lines accumulate (three words over 4 lines are a variable, over 40 a
  constant; a digit word is put back after 20 unchanged lines). Each such rewrite changes the text and
  so the id, and we accept that rather than freeze a template at the first id it was given: a frozen
  id would keep whatever text the first few lines suggested, and two trainings on the same data in a
  different order would disagree. So nothing downstream keeps a training-time id: ``parse`` keeps the
  handle from :meth:`TemplateMiner.learn_cluster` and calls :meth:`TemplateMiner.final_template` at
  the end, and a model's columns are the final ids. :meth:`TemplateMiner.learn` answers "as of now".
* **After training ids never move.** :meth:`TemplateMiner.match` does not change the state, and the
  state (:meth:`TemplateMiner.to_state`) holds everything the rules read, so every worker, every
  restart and every reload computes the same id for the same line; a miner rebuilt from a saved state
  also goes on learning exactly as the original would have.
* **Retraining** gives a template the same id whenever its final text is the same. The count rules
  are ratios that settle as data grows, so a retraining on more of the same logs keeps the ids.
* Two clusters whose final texts are equal share one id, which is what we want: same text, same
  template. Two different texts collide with probability ~n^2/2^41 (1e-5 for 5,000 templates).
* A template never seen in training (:meth:`TemplateMiner.match` with ``known=False``) gets the id of
  its own text: the masked message or, when the line fits a trained cluster but has a new word at a
  position kept constant, that cluster's template with the line's words there (a digit word put back
  as a constant that the line does not have stays masked there, so all such lines share one id). It
  depends only on the message and the trained state, never on arrival order or process, and lines
  that differ only in masked variables share it.
* The ids depend on the masking rules, so the state records :data:`pipeline.masking.MASKING_VERSION`
  and refuses to load under other rules. A state written before the count, digit and first-word
  rules existed (state version 1) loads with those rules off, so a model trained then keeps its ids.

Template ids across retraining
------------------------------
Ids of unchanged template texts are equal in every model. A retraining on shifted data may still change a
text (a position that was a binary choice sees a third value and becomes ``<*>``), and with it the id that
dashboards and alert rules filter on. :meth:`TemplateMiner.warm_start` therefore starts a retraining from the
previous model's state with every cluster **frozen**: a message that is a known template of a frozen cluster is
tagged with it and changes nothing; any other message is learnt into the non-frozen clusters only (Drain never
picks a frozen cluster to generalise, and first-word merges leave frozen clusters alone), so new templates join
the vocabulary and known ones keep their text and id. :meth:`TemplateMiner.match` follows the same rule: known
templates of frozen clusters first, then the clusters learnt since.

Template cap
------------
``MinerConfig.max_clusters`` (``--max-templates``, 50,000 by default) bounds the state. Once that many clusters
exist, a line that would start a new one is counted in :attr:`TemplateMiner.other_lines` (a counter for
metrics and the training summary) and tagged with the one template :data:`OTHER_TEMPLATE`, whose id is the
hash of its text like every other id; lines that fit an existing cluster are learnt as before. Matching is
unchanged: after training a line that fits no template still gets the id of its own text (``known=False``).

Persistence is plain JSON (:meth:`TemplateMiner.to_state`): drain3's own snapshots use jsonpickle,
which can instantiate arbitrary types on load, so we never use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from drain3.drain import LogCluster

from pipeline.records import TemplateMatch, template_id
from pipeline.stages import template_tree
from pipeline.stages.masking import MASK, MASKING_VERSION, mask_message
from pipeline.stages.memo import MISSING, Memo
from pipeline.stages.template_index import ClusterIndex
from pipeline.stages.template_index import MaskedDrain as _MaskedDrain
from pipeline.stages.template_rules import (
    RULES_OFF,
    ClusterStats,
    MinerConfig,
    fixed_words,
    kept_positions,
)

__all__ = ["OTHER_TEMPLATE", "MinerConfig", "TemplateMiner", "template_id"]

# The template of the lines learnt once the template cap was reached (see the module doc).
OTHER_TEMPLATE = "<other: lines beyond the template cap>"
_OTHER = -1  # the pseudo cluster id of OTHER_TEMPLATE in handles
STATE_FORMAT = "logwarden.templates"
STATE_VERSION = 2
# The per-message memos of matching (see pipeline.stages.memo): entries, and characters of keys in all.
_MEMO_ENTRIES = 100_000
_MEMO_CHARS = 2_000_000
# The exact-message memo of ``match``: entries, and the longest message kept (bounds its memory to a few MB).
_EXACT_CACHE = 20_000
_EXACT_MAX_CHARS = 256


@dataclass(slots=True)
class _Final:
    """The final templates of one cluster: positions kept constant and one match per combination.

    ``kept`` positions take the line's (masked) word; ``fixed`` positions hold the raw word every
    training line had there (a line with another word there keeps the masked template token).
    """

    kept: tuple[int, ...]
    fixed: dict[int, str]
    template: tuple[str, ...]
    by_combo: dict[tuple[str, ...], TemplateMatch]
    sizes: dict[tuple[str, ...], int]

    def fill(self, tokens: Any, raw: list[str | None] | None = None) -> str:
        filled = list(self.template)
        for p, word in self.fixed.items():
            if raw is None or raw[p] == word:
                filled[p] = word
        for p in self.kept:
            filled[p] = tokens[p]
        return " ".join(filled)

    def fits(self, raw: list[str | None]) -> bool:
        for p, word in self.fixed.items():  # noqa: SIM110 - a loop, not all() over a generator: once per matched line
            if raw[p] != word:
                return False
        return True


def _copy(match: TemplateMatch) -> TemplateMatch:
    """A fresh TemplateMatch (the cached ones must not be changed by callers)."""
    return TemplateMatch(match.template_id, match.template, match.known)


class TemplateMiner:
    """Masking + Drain + stable ids. ``learn`` while training, ``match`` afterwards.

    Not thread-safe; give each worker its own instance (``from_state`` of the same state).
    """

    @classmethod
    def for_settings(cls, max_templates: int) -> TemplateMiner:
        """A new miner with the default rules and ``max_templates`` as its cluster cap (``--max-templates``)."""
        return cls(MinerConfig(max_clusters=int(max_templates)))

    def __init__(self, config: MinerConfig | None = None) -> None:
        self.config = config or MinerConfig()
        self._drain = _MaskedDrain(
            sim_th=self.config.sim_th,
            depth=self.config.depth,
            max_children=self.config.max_children,
            param_str=MASK,
            parametrize_numeric_tokens=True,
        )
        self._drain.index = ClusterIndex(self._drain.id_to_cluster)
        self._stats: dict[int, ClusterStats] = {}
        self._final: dict[int, _Final] = {}
        self._known: dict[str, str] | None = None
        self._handles: list[tuple[int, tuple[str, ...]]] = []
        self._handle_of: dict[tuple[int, tuple[str, ...]], int] = {}
        self._merged_into: dict[int, int] = {}  # cluster folded by a first-word merge -> its new cluster
        self._rest_index: template_tree.RestIndex | None = None  # built on first use
        self._frozen: frozenset[int] = frozenset()
        self._frozen_by_len: dict[int, list[int]] | None = None
        self._frozen_cache: Memo[str, int | None] = Memo(_MEMO_ENTRIES, _MEMO_CHARS)
        self._cap = max(2, self.config.max_enum_values)
        self.other_lines = 0  # lines tagged OTHER_TEMPLATE because the template cap was reached
        self._match_cache: Memo[tuple[str, bool], int | None] = Memo(_MEMO_ENTRIES, _MEMO_CHARS)
        self._exact_cache: dict[str, TemplateMatch] = {}
        # When a set: the ids of the unknown templates :meth:`match_shared` answered (``detect``'s count of templates
        # the model never saw). Every answer is computed once before the exact memo can give it, so noting the
        # computed ones notes them all.
        self.unseen_ids: set[str] | None = None
        # masked message -> what matching it needs beyond its raw words (see ``_match_shared``); dropped with the
        # match memo
        self._shape_cache: Memo[str, tuple[_Final | None, TemplateMatch | None]] = Memo(_MEMO_ENTRIES, _MEMO_CHARS)

    # ----------------------------------------------------------------------------- training
    def learn_cluster(self, message: str) -> int:
        """Learn one message; return a handle for :meth:`final_template` once training is over.

        Handles are small ints shared by lines with the same cluster and the same words; they live
        as long as this object and are not persisted.
        """
        shared, raw, joined = mask_message(message)
        tokens = list(shared)
        if self._match_cache:
            self._match_cache.clear()  # learning may change what a masked message matches
        if self._shape_cache:
            self._shape_cache.clear()
        if self._exact_cache:
            self._exact_cache.clear()
        frozen = self._known_frozen(tokens, raw, joined) if self._frozen else None
        if frozen is not None:
            entry = (frozen, self._stats[frozen].project(tokens))
        elif len(self._drain.id_to_cluster) >= self.config.max_clusters and self._would_create(joined):
            self.other_lines += 1
            self._known = None
            entry = (_OTHER, ())
        else:
            self._drain.exclude = self._frozen
            try:
                cluster, update = self._drain.add_log_message(joined)
            finally:
                self._drain.exclude = frozenset()
            cid = cluster.cluster_id
            stats = self._stats.get(cid)
            if stats is None:
                stats = self._stats[cid] = ClusterStats.empty(tokens, raw)
            key = stats.add(tokens, raw, self._cap)
            self._final.pop(cid, None)
            self._known = None
            if update == "cluster_created" and self.config.merge_first_words:
                merged = self._merge_first_words(cluster)
                if merged != cid:
                    cid, key = merged, self._stats[merged].project(tokens)
            entry = (cid, key)
        handle = self._handle_of.get(entry)
        if handle is None:
            handle = self._handle_of[entry] = len(self._handles)
            self._handles.append(entry)
        return handle

    def _would_create(self, joined: str) -> bool:
        """Whether Drain would start a new cluster for this masked message (the search ``add_log_message`` does)."""
        drain = self._drain
        drain.exclude = self._frozen
        try:
            found = drain.tree_search(drain.root_node, drain.get_content_as_tokens(joined), drain.sim_th, False)
        finally:
            drain.exclude = frozenset()
        return found is None

    def learn(self, message: str) -> TemplateMatch:
        """Learn one message (may create or generalise templates); return its template as of now."""
        cid, key = self._entry(self.learn_cluster(message))
        if cid == _OTHER:
            return TemplateMatch(template_id(OTHER_TEMPLATE), OTHER_TEMPLATE, True)
        template = tuple(self._cluster(cid).log_template_tokens)
        stats = self._stats[cid]
        final = _Final(kept_positions(template, stats, self.config), fixed_words(template, stats, self.config),
                       template, {}, {})
        text = final.fill(key)
        return TemplateMatch(template_id(text), text, True)

    def final_template(self, handle: int) -> TemplateMatch:
        """The template, as of the current state, of a line learnt with :meth:`learn_cluster`."""
        cid, key = self._entry(handle)
        if cid == _OTHER:
            return TemplateMatch(template_id(OTHER_TEMPLATE), OTHER_TEMPLATE, True)
        final = self._final_of(cid)
        return _copy(final.by_combo[tuple(key[p] for p in final.kept)])

    def _entry(self, handle: int) -> tuple[int, tuple[str, ...]]:
        cid, key = self._handles[handle]
        while cid in self._merged_into:
            cid = self._merged_into[cid]
        return cid, key

    def _merge_first_words(self, cluster: LogCluster) -> int:
        """Fold ``cluster`` and its first-word siblings into one cluster when they show many first words.

        Returns the id of the cluster that now holds the line (``cluster``'s own id when nothing merged).
        """
        if self._rest_index is None:
            self._rest_index = template_tree.RestIndex(self._drain.clusters)
        else:
            self._rest_index.add(cluster)
        index = self._rest_index
        siblings = template_tree.first_word_siblings(self._drain, cluster, self._stats, self.config, index)
        siblings = [c for c in siblings if c.cluster_id not in self._frozen]  # a frozen cluster never changes
        if not siblings:
            return cluster.cluster_id
        parts = sorted([cluster, *siblings], key=lambda c: c.cluster_id)
        generalised = [c for c in parts if c.log_template_tokens[0] == MASK]
        target = (generalised or parts)[0]
        stats = ClusterStats.merged([self._stats[c.cluster_id] for c in parts], self._cap)
        template_tree.merge_clusters(self._drain, target, parts)
        self._drain.index.add(target)
        index.add(target)
        for c in parts:
            self._final.pop(c.cluster_id, None)
            if c is not target:
                del self._stats[c.cluster_id]
                self._merged_into[c.cluster_id] = target.cluster_id
        self._stats[target.cluster_id] = stats
        return target.cluster_id

    def _known_frozen(self, tokens: Sequence[str], raw: list[str | None], joined: str) -> int | None:
        """The most specific frozen cluster that matches ``tokens`` exactly *and* knows their template.

        Every frozen cluster of that length is a candidate, not only the first Drain finds: a message may fit
        the template of two frozen clusters (``port <*>`` kept as ``ssh``/``http`` in one, ``ftp``/``smtp`` in
        another) and only one knows its words. Memoised per masked message (bounded).
        """
        cache = self._frozen_cache
        key = joined + "\x00" + "\x00".join("" if w is None else w for w in raw)
        found = cache.get(key)
        if found is MISSING:
            found = self._known_frozen_afresh(tokens, raw)
            cache.put(key, found, len(key))
        return found

    def _known_frozen_afresh(self, tokens: Sequence[str], raw: list[str | None]) -> int | None:
        """:meth:`_known_frozen` without its memo."""
        if self._frozen_by_len is None:
            self._frozen_by_len = {}
            for fid in sorted(self._frozen):
                self._frozen_by_len.setdefault(len(self._cluster(fid).log_template_tokens), []).append(fid)
        best: int | None = None
        best_params = -1
        for cid in self._frozen_by_len.get(len(tokens), ()):
            sim, params = self._drain.get_seq_distance(self._cluster(cid).log_template_tokens, tokens, True)
            if sim < 1.0:
                continue
            final = self._final_of(cid)
            if tuple(tokens[p] for p in final.kept) not in final.by_combo or not final.fits(raw):
                continue
            if best is None or params < best_params:
                best, best_params = cid, params
        return best

    # ---------------------------------------------------------------------------- inference
    def match(self, message: str) -> TemplateMatch:
        """The trained template of a message, without changing any cluster.

        A message that fits no trained template gets ``known=False`` and the id of its own text.

        The answer depends only on the message and the trained state, so a message seen before (logs repeat
        whole messages) is answered from a memo without masking; learning drops the memo. Bounded, and only
        short messages are kept.
        """
        return _copy(self.match_shared(message))

    def match_shared(self, message: str) -> TemplateMatch:
        """:meth:`match`, but the answer may be the object its memo holds: the caller must never change it (the chain
        of ``detect`` only reads it; a copy per line costs more than the memo's look-up)."""
        cache = self._exact_cache
        found = cache.get(message)
        if found is None:
            found = self._match_shared(message)
            if not found.known and self.unseen_ids is not None:
                self.unseen_ids.add(found.template_id)
            if len(message) <= _EXACT_MAX_CHARS:
                if len(cache) >= _EXACT_CACHE:
                    cache.clear()
                cache[message] = found
        return found

    def _match(self, message: str) -> TemplateMatch:
        """:meth:`match` without the exact-message memo."""
        return _copy(self._match_shared(message))

    def _match_shared(self, message: str) -> TemplateMatch:
        """:meth:`_match`, but the answer may be an object the memos hold: callers copy it before handing it out.

        Without frozen clusters the answer up to the line's raw words depends only on the masked message, so it is
        memoised per masked message (``_shape_cache``: its cluster's final templates and the match of its
        combination of kept words); only the check of the positions fixed to a raw word is done per line.
        """
        tokens, raw, joined = mask_message(message)
        if self._frozen:
            return self._match_tokens(tokens, raw, joined, True)
        plan = self._shape_cache.find(joined, MISSING)
        if plan is MISSING:
            plan = self._shape_plan(tokens, joined)
            self._shape_cache.put(joined, plan, len(joined))
        final, found = plan
        if final is None or (found is not None and (not final.fixed or final.fits(raw))):  # nothing fixed: it fits
            assert found is not None
            return found
        text = final.fill(tokens, raw)
        tid = template_id(text)
        return TemplateMatch(tid, text, known=tid in self._known_templates())

    def _shape_plan(self, tokens: Sequence[str], joined: str) -> tuple[_Final | None, TemplateMatch | None]:
        """For a masked message (no frozen clusters): (None, its unknown-template answer) when it fits no
        cluster, else its cluster's final templates and the match of its kept words (None: a combination
        never trained)."""
        cluster = self._drain_match(joined, False)
        if cluster is None:
            tid = template_id(joined)
            return None, TemplateMatch(tid, joined, known=tid in self._known_templates())
        final = self._final_of(cluster.cluster_id)
        return final, final.by_combo.get(tuple(tokens[p] for p in final.kept))

    def _match_afresh(self, message: str) -> TemplateMatch:
        """:meth:`_match` with no memo at all (masking included): what the memos must agree with (tests)."""
        from pipeline.stages.masking import _mask_message, scrub  # noqa: PLC0415

        tokens, raw, joined = _mask_message(scrub(message))[:3]
        return _copy(self._match_tokens(tokens, raw, joined, False))

    def _match_tokens(self, tokens: Sequence[str], raw: list[str | None], joined: str, memo: bool) -> TemplateMatch:
        """The match of a masked message (``memo``: Drain's answer through ``_match_cache``)."""
        find = self._drain_match if memo else self._drain_search
        cluster: LogCluster | None = None
        if self._frozen:
            fid = self._known_frozen(tokens, raw, joined) if memo else self._known_frozen_afresh(tokens, raw)
            # not a known template of a frozen cluster: the clusters learnt since may know it
            cluster = self._cluster(fid) if fid is not None else find(joined, True)
        if cluster is None:
            cluster = find(joined, False)
        if cluster is None:
            text = joined
        else:
            final = self._final_of(cluster.cluster_id)
            found = final.by_combo.get(tuple(tokens[p] for p in final.kept))
            if found is not None and final.fits(raw):
                return found
            text = final.fill(tokens, raw)
        tid = template_id(text)
        return TemplateMatch(tid, text, known=tid in self._known_templates())

    def _drain_match(self, joined: str, exclude_frozen: bool) -> LogCluster | None:
        """Drain's match of a masked message, memoised: lines with a masked shape seen before need no tree search.

        The answer depends only on the masked message and the clusters, so the memo is dropped whenever a line
        is learnt (and bounded)."""
        key = (joined, exclude_frozen)
        cache = self._match_cache
        cid = cache.get(key)
        if cid is not MISSING:
            return None if cid is None else self._cluster(cid)
        cluster = self._drain_search(joined, exclude_frozen)
        cache.put(key, None if cluster is None else cluster.cluster_id, len(joined))
        return cluster

    def _drain_search(self, joined: str, exclude_frozen: bool) -> LogCluster | None:
        """Drain's match of a masked message (``exclude_frozen``: among the clusters learnt since the warm start)."""
        drain = self._drain
        drain.exclude = self._frozen if exclude_frozen else frozenset()
        try:
            return drain.match(joined, full_search_strategy="fallback")
        finally:
            drain.exclude = frozenset()

    def templates(self) -> dict[str, str]:
        """Template id -> text for every trained template (a copy)."""
        return dict(self._known_templates())

    def _known_templates(self) -> dict[str, str]:
        if self._known is None:
            self._known = {
                m.template_id: m.template
                for cid in self._drain.id_to_cluster
                for m in self._final_of(cid).by_combo.values()
            }
            if self.other_lines:
                self._known[template_id(OTHER_TEMPLATE)] = OTHER_TEMPLATE
        return self._known

    def template_counts(self) -> dict[str, int]:
        """Template id -> number of training lines (clusters sharing a text are added up)."""
        counts: dict[str, int] = {}
        for cid in self._drain.id_to_cluster:
            final = self._final_of(cid)
            for combo, m in final.by_combo.items():
                counts[m.template_id] = counts.get(m.template_id, 0) + final.sizes[combo]
        if self.other_lines:
            tid = template_id(OTHER_TEMPLATE)
            counts[tid] = counts.get(tid, 0) + self.other_lines
        return counts

    def __len__(self) -> int:
        return len(self._known_templates())

    def _final_of(self, cid: int) -> _Final:
        final = self._final.get(cid)
        if final is None:
            final = self._final[cid] = self._finalize(self._cluster(cid), self._stats[cid])
        return final

    def _cluster(self, cid: int) -> LogCluster:
        # drain3-improved types its map as Optional (an LRU cache evicts clusters when max_clusters is
        # set); ours is never bounded, so a missing cluster is a bug, not an eviction.
        cluster = self._drain.id_to_cluster[cid]
        if cluster is None:
            raise KeyError(f"template cluster {cid} is missing")
        return cluster

    def _finalize(self, cluster: LogCluster, stats: ClusterStats) -> _Final:
        template = tuple(cluster.log_template_tokens)
        kept = kept_positions(template, stats, self.config)
        final = _Final(kept, fixed_words(template, stats, self.config), template, {}, {})
        for key, n in stats.joint.items():
            combo = tuple(key[p] for p in kept)
            if combo not in final.by_combo:
                text = final.fill(key)
                final.by_combo[combo] = TemplateMatch(template_id(text), text, True)
            final.sizes[combo] = final.sizes.get(combo, 0) + n
        return final

    # -------------------------------------------------------------------------- persistence
    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: config, Drain prefix tree and clusters, word counts."""
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "masking_version": MASKING_VERSION,
            "config": asdict(self.config),
            "clusters_counter": self._drain.clusters_counter,
            "frozen": sorted(self._frozen),
            "other_lines": self.other_lines,
            "tree": template_tree.node_to_json(self._drain.root_node),
            "clusters": [
                {
                    "id": c.cluster_id,
                    "tokens": list(c.log_template_tokens),
                    "size": c.size,
                    **self._stats[c.cluster_id].to_json(),
                }
                for c in self._drain.clusters
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TemplateMiner:
        """Rebuild a miner from :meth:`to_state` output; ValueError names what is wrong.

        A version-1 state (written before the count, digit and first-word rules) loads with those
        rules off, so its templates keep their texts and ids.
        """
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError("not a template miner state")
        version = state.get("version")
        if version not in (1, STATE_VERSION):
            raise ValueError(f"unsupported template miner state version {version!r}: retrain the model")
        if state.get("masking_version") != MASKING_VERSION:
            raise ValueError(
                f"template miner state was built with masking rules v{state.get('masking_version')}, "
                f"this version uses v{MASKING_VERSION}: retrain the model"
            )
        try:
            config = state["config"] if version == STATE_VERSION else {**state["config"], **RULES_OFF}
            miner = cls(MinerConfig(**config))
            drain = miner._drain
            drain.clusters_counter = int(state["clusters_counter"])
            drain.root_node = template_tree.node_from_json(state["tree"])
            for c in state["clusters"]:
                cid = int(c["id"])
                tokens = [str(t) for t in c["tokens"]]
                cluster = LogCluster(tokens, cid)
                cluster.size = int(c["size"])
                drain.id_to_cluster[cid] = cluster
                try:
                    miner._stats[cid] = ClusterStats.from_json(c, len(tokens))
                except ValueError as exc:
                    raise ValueError(f"cluster {cid}: {exc}") from exc
            miner._frozen = frozenset(int(cid) for cid in state.get("frozen", ()))
            miner.other_lines = int(state.get("other_lines", 0))
            if not miner._frozen <= set(miner._stats):
                raise ValueError("frozen clusters that do not exist")
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"invalid template miner state: {exc!r}") from exc
        return miner

    @classmethod
    def warm_start(cls, state: dict[str, Any]) -> TemplateMiner:
        """A miner to retrain from a previous model's state: its templates keep their ids (see the module doc)."""
        miner = cls.from_state(state)
        miner._frozen = frozenset(miner._stats)
        miner._match_cache.clear()
        miner._shape_cache.clear()
        miner._exact_cache.clear()
        return miner
