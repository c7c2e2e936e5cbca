"""Template mining: Drain3 behind our masking, with template ids that are stable across processes.

How a message becomes a template
--------------------------------
1. :func:`pipeline.masking.mask_tokens` masks variables (numbers, addresses, paths, ids, ...).
2. A drain3 ``Drain`` prefix tree (from ``drain3-improved``, the maintained fork of drain3 0.9.11)
   clusters the masked token lists. Positions masked in both the template and the message count as
   equal in its similarity, since the masker already decided they are the same parameter.
3. Drain generalises a word position at the first difference it sees. We keep a per-cluster count of
   the words seen at each position and, when the templates are read, give back a constant where the
   evidence says the position is a choice made by the code rather than a variable:

   * **binary choice**: exactly two different words ever seen there (``startup``/``shutdown``,
     ``bytes``/``values``, ``failure;``/``failures;``), unless one is the other's masked form
     (``chdir(<*>)``/``chdir(pwd)``); a variable shows a third value soon enough;
   * **enum**: every word seen is an UPPER_CASE identifier (``RUNNING``, ``FAIL_TASK_CLEANUP``), the way
     code prints states and types, and there are at most ``max_enum_values`` of them.

   The final template of a line is its Drain template with those positions filled from the line.

Template ids
------------
Drain3's cluster ids are integers handed out in arrival order: another worker, a restart or a
retraining numbers the same template differently, so they cannot name the columns of a model.
:func:`template_id` is instead ``"T"`` + the first 10 hex digits (40 bits) of the BLAKE2b hash of the
final template text. Consequences:

* An id is known only once training is over: a template may still generalise (``... port 22`` ->
  ``... port <*>``). Ids are always computed from the current state, so read them after the last
  ``learn``. To tag every training line with its final id (the ``parse`` command), keep the handle
  from :meth:`TemplateMiner.learn_cluster` and call :meth:`TemplateMiner.final_template` at the end.
* Two clusters whose final texts are equal share one id, which is what we want: same text, same
  template. Two different texts collide with probability ~n^2/2^41 (1e-5 for 5,000 templates).
* A template never seen in training (:meth:`TemplateMiner.match` with ``known=False``) gets the id of
  its own text: the masked message or, when the line fits a trained cluster but has a new word at a
  position kept constant, that cluster's template with the line's words there. It depends only on
  the message and the trained state, never on arrival order or process, and lines that differ only
  in masked variables share it.
* The ids depend on the masking rules, so the state records :data:`pipeline.masking.MASKING_VERSION`
  and refuses to load under other rules.

Template ids across retraining
------------------------------
Ids of unchanged template texts are equal in every model. A retraining on shifted data may still change a
text (a position that was a binary choice sees a third value and becomes ``<*>``), and with it the id that
dashboards and alert rules filter on. :meth:`TemplateMiner.warm_start` therefore starts a retraining from the
previous model's state with every cluster **frozen**: a message that is a known template of a frozen cluster is
tagged with it and changes nothing; any other message is learnt into the non-frozen clusters only (Drain never
picks a frozen cluster to generalise), so new templates join the vocabulary and known ones keep their text and
id. :meth:`TemplateMiner.match` follows the same rule: known templates of frozen clusters first, then the
clusters learnt since.

Persistence is plain JSON (:meth:`TemplateMiner.to_state`): drain3's own snapshots use jsonpickle,
which can instantiate arbitrary types on load, so we never use it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any

from drain3.drain import Drain, LogCluster, Node

from pipeline.records import TemplateMatch
from pipeline.stages.masking import MASK, MASKING_VERSION, mask_tokens

STATE_FORMAT = "logwarden.templates"
STATE_VERSION = 1
_FROZEN_CACHE = 100_000
_ENUM = re.compile(r"[^\w<]*[A-Z][A-Z_]*[A-Z][^\w<]*")


def template_id(template_text: str) -> str:
    """The stable id of a template text: ``T`` + 10 hex digits of its BLAKE2b hash."""
    return "T" + hashlib.blake2b(template_text.encode("utf-8"), digest_size=5).hexdigest()


@dataclass(frozen=True, slots=True)
class MinerConfig:
    """Template miner parameters; the defaults are meant for any system, without tuning.

    ``sim_th`` is Drain's similarity threshold. Because the masker already removed most variables,
    results hardly move between 0.4 and 0.8; 0.6 sits in the middle. ``depth`` 4 routes on the
    first token, as drain3 does by default (deeper trees split templates that start with a variable
    word). ``max_children`` is drain3's default.
    """

    sim_th: float = 0.6
    depth: int = 4
    max_children: int = 100
    split_binary: bool = True
    split_enums: bool = True
    max_enum_values: int = 12

    def __post_init__(self) -> None:
        if not 0.0 <= self.sim_th <= 1.0:
            raise ValueError(f"sim_th must be within [0, 1], got {self.sim_th}")
        if self.depth < 3:
            raise ValueError(f"depth must be at least 3, got {self.depth}")
        if self.max_children < 2:
            raise ValueError(f"max_children must be at least 2, got {self.max_children}")
        if self.max_enum_values < 2:
            raise ValueError(f"max_enum_values must be at least 2, got {self.max_enum_values}")


class _MaskedDrain(Drain):
    """Drain whose similarity counts a position masked in both template and message as equal.

    Clusters in ``exclude`` are invisible to matching (the frozen clusters of a warm start while learning).
    """

    exclude: frozenset[int] = frozenset()

    def fast_match(self, cluster_ids: Any, tokens: Any, sim_th: float, include_params: bool) -> LogCluster | None:
        if self.exclude:
            cluster_ids = [cid for cid in cluster_ids if cid not in self.exclude]
        return super().fast_match(cluster_ids, tokens, sim_th, include_params)

    def get_seq_distance(self, seq1: Any, seq2: Any, include_params: bool) -> tuple[float, int]:
        if not seq1:
            return 1.0, 0
        sim = params = 0
        for tpl_tok, tok in zip(seq1, seq2, strict=True):
            if tpl_tok == MASK:
                params += 1
                if include_params or tok == MASK:
                    sim += 1
            elif tpl_tok == tok:
                sim += 1
        return sim / len(seq1), params


class _Stats:
    """Words seen per position of one cluster, and their joint combinations.

    ``values[p]`` counts the words at position p, or is None once more than ``cap`` distinct words
    were seen (a variable: no longer tracked). ``joint`` counts the token tuples with untracked
    positions replaced by the mask, so the word combinations that really occurred can be listed.
    """

    __slots__ = ("values", "joint")

    def __init__(self, values: list[dict[str, int] | None], joint: dict[tuple[str, ...], int]) -> None:
        self.values = values
        self.joint = joint

    def add(self, tokens: list[str], cap: int) -> tuple[str, ...]:
        overflow = False
        for p, tok in enumerate(tokens):
            counts = self.values[p]
            if counts is not None:
                counts[tok] = counts.get(tok, 0) + 1
                if len(counts) > cap:
                    self.values[p] = None
                    overflow = True
        if overflow:
            joint: dict[tuple[str, ...], int] = {}
            for key, n in self.joint.items():
                k = self.project(key)
                joint[k] = joint.get(k, 0) + n
            self.joint = joint
        key = self.project(tokens)
        self.joint[key] = self.joint.get(key, 0) + 1
        return key

    def project(self, tokens: Any) -> tuple[str, ...]:
        if None not in self.values:
            return tuple(tokens)
        return tuple(MASK if c is None else t for t, c in zip(tokens, self.values, strict=True))


@dataclass(slots=True)
class _Final:
    """The final templates of one cluster: positions kept constant and one match per combination."""

    kept: tuple[int, ...]
    template: tuple[str, ...]
    by_combo: dict[tuple[str, ...], TemplateMatch]
    sizes: dict[tuple[str, ...], int]

    def fill(self, tokens: Any) -> str:
        filled = list(self.template)
        for p in self.kept:
            filled[p] = tokens[p]
        return " ".join(filled)


def _copy(match: TemplateMatch) -> TemplateMatch:
    """A fresh TemplateMatch (the cached ones must not be changed by callers)."""
    return TemplateMatch(match.template_id, match.template, match.known)


def _instance_of(pattern: str, word: str) -> bool:
    """True when ``word`` is ``pattern`` with each mask standing for a non-empty text."""
    if MASK not in pattern:
        return False
    rx = ".+".join(re.escape(part) for part in pattern.split(MASK))
    return re.fullmatch(rx, word, re.S) is not None


class TemplateMiner:
    """Masking + Drain + stable ids. ``learn`` while training, ``match`` afterwards.

    Not thread-safe; give each worker its own instance (``from_state`` of the same state).
    """

    def __init__(self, config: MinerConfig | None = None) -> None:
        self.config = config or MinerConfig()
        self._drain = _MaskedDrain(
            sim_th=self.config.sim_th,
            depth=self.config.depth,
            max_children=self.config.max_children,
            param_str=MASK,
            parametrize_numeric_tokens=True,
        )
        self._stats: dict[int, _Stats] = {}
        self._final: dict[int, _Final] = {}
        self._known: dict[str, str] | None = None
        self._handles: list[tuple[int, tuple[str, ...]]] = []
        self._handle_of: dict[tuple[int, tuple[str, ...]], int] = {}
        self._cap = max(2, self.config.max_enum_values)
        self._frozen: frozenset[int] = frozenset()
        self._frozen_by_len: dict[int, list[int]] | None = None
        self._frozen_cache: dict[str, int | None] = {}

    # ----------------------------------------------------------------------------- training
    def learn_cluster(self, message: str) -> int:
        """Learn one message; return a handle for :meth:`final_template` once training is over.

        Handles are small ints shared by lines with the same cluster and the same words; they live
        as long as this object and are not persisted.
        """
        tokens = mask_tokens(message)
        joined = " ".join(tokens)
        entry = self._frozen_entry(tokens, joined) if self._frozen else None
        if entry is None:
            self._drain.exclude = self._frozen
            try:
                cluster, _ = self._drain.add_log_message(joined)
            finally:
                self._drain.exclude = frozenset()
            cid = cluster.cluster_id
            stats = self._stats.get(cid)
            if stats is None:
                stats = self._stats[cid] = _Stats([{} for _ in tokens], {})
            key = stats.add(tokens, self._cap)
            self._final.pop(cid, None)
            self._known = None
            entry = (cid, key)
        handle = self._handle_of.get(entry)
        if handle is None:
            handle = self._handle_of[entry] = len(self._handles)
            self._handles.append(entry)
        return handle

    def _frozen_entry(self, tokens: list[str], joined: str) -> tuple[int, tuple[str, ...]] | None:
        """``(cluster, key)`` when the message is a known template of a frozen cluster (nothing is learnt)."""
        cid = self._known_frozen(tokens, joined)
        return None if cid is None else (cid, self._stats[cid].project(tokens))

    def _known_frozen(self, tokens: list[str], joined: str) -> int | None:
        """The most specific frozen cluster that matches ``tokens`` exactly *and* knows their template.

        Every frozen cluster of that length is a candidate, not only the first Drain finds: a message may fit
        the template of two frozen clusters (``port <*>`` kept as ``ssh``/``http`` in one, ``ftp``/``smtp`` in
        another) and only one knows its words. Memoised per masked message (bounded).
        """
        cache = self._frozen_cache
        if joined in cache:
            return cache[joined]
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
            if tuple(tokens[p] for p in final.kept) not in final.by_combo:
                continue
            if best is None or params < best_params:
                best, best_params = cid, params
        if len(cache) >= _FROZEN_CACHE:
            cache.clear()
        cache[joined] = best
        return best

    def learn(self, message: str) -> TemplateMatch:
        """Learn one message (may create or generalise templates); return its template as of now."""
        cid, key = self._handles[self.learn_cluster(message)]
        template = self._cluster(cid).log_template_tokens
        text = " ".join(
            key[p] if tok == MASK and self._is_constant(self._stats[cid].values[p]) else tok
            for p, tok in enumerate(template)
        )
        return TemplateMatch(template_id(text), text, True)

    def final_template(self, handle: int) -> TemplateMatch:
        """The template, as of the current state, of a line learnt with :meth:`learn_cluster`."""
        cid, key = self._handles[handle]
        final = self._final_of(cid)
        return _copy(final.by_combo[tuple(key[p] for p in final.kept)])

    # ---------------------------------------------------------------------------- inference
    def match(self, message: str) -> TemplateMatch:
        """The trained template of a message, without changing any cluster.

        A message that fits no trained template gets ``known=False`` and the id of its own text.
        """
        tokens = mask_tokens(message)
        joined = " ".join(tokens)
        cluster: LogCluster | None = None
        if self._frozen:
            cid = self._known_frozen(tokens, joined)
            if cid is not None:
                cluster = self._cluster(cid)
            else:  # not a known template of a frozen cluster: the clusters learnt since may know it
                self._drain.exclude = self._frozen
                try:
                    cluster = self._drain.match(joined, full_search_strategy="fallback")
                finally:
                    self._drain.exclude = frozenset()
        if cluster is None:
            cluster = self._drain.match(joined, full_search_strategy="fallback")
        if cluster is None:
            text = " ".join(tokens)
        else:
            final = self._final_of(cluster.cluster_id)
            found = final.by_combo.get(tuple(tokens[p] for p in final.kept))
            if found is not None:
                return _copy(found)
            text = final.fill(tokens)
        tid = template_id(text)
        return TemplateMatch(tid, text, known=tid in self._known_templates())

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
        return self._known

    def template_counts(self) -> dict[str, int]:
        """Template id -> number of training lines (clusters sharing a text are added up)."""
        counts: dict[str, int] = {}
        for cid in self._drain.id_to_cluster:
            final = self._final_of(cid)
            for combo, m in final.by_combo.items():
                counts[m.template_id] = counts.get(m.template_id, 0) + final.sizes[combo]
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

    def _finalize(self, cluster: LogCluster, stats: _Stats) -> _Final:
        template = tuple(cluster.log_template_tokens)
        kept = tuple(p for p, tok in enumerate(template) if tok == MASK and self._is_constant(stats.values[p]))
        final = _Final(kept, template, {}, {})
        for key, n in stats.joint.items():
            combo = tuple(key[p] for p in kept)
            if combo not in final.by_combo:
                text = final.fill(key)
                final.by_combo[combo] = TemplateMatch(template_id(text), text, True)
            final.sizes[combo] = final.sizes.get(combo, 0) + n
        return final

    def _is_constant(self, counts: dict[str, int] | None) -> bool:
        """Whether a generalised position holds a code-chosen word rather than a variable."""
        if counts is None or MASK in counts or len(counts) < 2:
            return False
        words = list(counts)
        if self.config.split_binary and len(words) == 2:
            a, b = words
            if not (_instance_of(a, b) or _instance_of(b, a)):
                return True
        return (
            self.config.split_enums
            and len(words) <= self.config.max_enum_values
            and all(_ENUM.fullmatch(w) for w in words)
        )

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
            "tree": _node_to_json(self._drain.root_node),
            "clusters": [
                {
                    "id": c.cluster_id,
                    "tokens": list(c.log_template_tokens),
                    "size": c.size,
                    "values": self._stats[c.cluster_id].values,
                    "joint": [[list(k), n] for k, n in self._stats[c.cluster_id].joint.items()],
                }
                for c in self._drain.clusters
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TemplateMiner:
        """Rebuild a miner from :meth:`to_state` output; ValueError names what is wrong."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError("not a template miner state")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported template miner state version {state.get('version')!r}")
        if state.get("masking_version") != MASKING_VERSION:
            raise ValueError(
                f"template miner state was built with masking rules v{state.get('masking_version')}, "
                f"this version uses v{MASKING_VERSION}: retrain the model"
            )
        try:
            miner = cls(MinerConfig(**state["config"]))
            drain = miner._drain
            drain.clusters_counter = int(state["clusters_counter"])
            drain.root_node = _node_from_json(state["tree"])
            for c in state["clusters"]:
                cid = int(c["id"])
                tokens = [str(t) for t in c["tokens"]]
                cluster = LogCluster(tokens, cid)
                cluster.size = int(c["size"])
                drain.id_to_cluster[cid] = cluster
                values = [None if v is None else {str(w): int(n) for w, n in v.items()} for v in c["values"]]
                joint = {tuple(str(t) for t in k): int(n) for k, n in c["joint"]}
                if len(values) != len(tokens) or any(len(k) != len(tokens) for k in joint):
                    raise ValueError(f"cluster {cid}: token counts disagree")
                miner._stats[cid] = _Stats(values, joint)
            miner._frozen = frozenset(int(cid) for cid in state.get("frozen", ()))
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
        return miner


def _node_to_json(node: Node) -> dict[str, Any]:
    return {
        "clusters": list(node.cluster_ids),
        "children": {key: _node_to_json(child) for key, child in node.key_to_child_node.items()},
    }


def _node_from_json(data: dict[str, Any]) -> Node:
    node = Node()
    node.cluster_ids = [int(i) for i in data["clusters"]]
    node.key_to_child_node = {str(k): _node_from_json(v) for k, v in data["children"].items()}
    return node
