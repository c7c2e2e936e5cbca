"""The evidence rules of the template miner, each on a small synthetic set that fails without it.

(a) few words over many lines are constants; (b) a first word with many values does not split a
template; (c) a digit word that never varies over many lines is put back. Plus: ids that do not depend
on the process or on a save/load, states written before the rules, and hostile messages.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.stages.masking import MASK, mask, mask_tokens_raw
from pipeline.stages.template_rules import RULES_OFF, ClusterStats, MinerConfig, fixed_words, is_constant
from pipeline.stages.template_tree import first_word_similarity
from pipeline.stages.templates import TemplateMiner, template_id

DATA = Path(__file__).parent / "data"
# Digit-free words, so the masker leaves them alone and only the miner's evidence can generalise them.
NAMES = ["".join(p) for p in itertools.product("bcdfgkmpst", "aeiou")][:40]


def learnt(lines: list[str], config: MinerConfig | None = None) -> tuple[TemplateMiner, list[str]]:
    """A miner that learnt ``lines`` and the final template text of each line."""
    miner = TemplateMiner(config)
    handles = [miner.learn_cluster(line) for line in lines]
    return miner, [miner.final_template(h).template for h in handles]


def accounts(counts: dict[str, int]) -> list[str]:
    """Login lines whose ``account=`` word takes the given words, interleaved, hosts varying."""
    words = [w for w, n in counts.items() for _ in range(n)]
    words = sorted(words, key=lambda w: (words.index(w) % 7, w))  # interleaved, deterministic
    return [f"login refused account={w} from 10.0.{i // 250}.{i % 250}" for i, w in enumerate(words)]


# ------------------------------------------------------------------- (a) few words, many lines
def test_few_words_over_many_lines_are_constants() -> None:
    lines = accounts({"alpha": 20, "beta": 12, "gamma": 8})
    _, texts = learnt(lines)
    assert set(texts) == {f"login refused account={w} from <*>" for w in ("alpha", "beta", "gamma")}
    _, without = learnt(lines, MinerConfig(split_frequent=False))
    assert set(without) == {"login refused <*> from <*>"}


@pytest.mark.parametrize(
    "counts",
    [
        {"alpha": 2, "beta": 1, "gamma": 1},  # three words over four lines: no evidence yet
        {"alpha": 30, "beta": 30, "gamma": 1},  # a word seen once: the trace of a variable
        {f"w{c}": 3 for c in "abcdefghijklm"},  # more words than any closed set (13 > max_enum_values)
    ],
)
def test_a_variable_stays_a_variable(counts: dict[str, int]) -> None:
    counts = {k.replace("w", "user"): v for k, v in counts.items()}
    _, texts = learnt(accounts(counts))
    assert set(texts) == {"login refused <*> from <*>"}


def test_few_words_rule_reads_counts_not_arrival() -> None:
    config = MinerConfig()
    assert is_constant({"a": 10, "b": 10, "c": 10}, config)
    assert not is_constant({"a": 10, "b": 10, "c": 9}, MinerConfig(lines_per_word=11))
    assert not is_constant({"a": 27, "b": 2, "c": 1}, config)
    assert not is_constant({"x(<*>)": 20, "x(a)": 20, "x(b)": 20}, config)  # masked form of the others
    assert not is_constant({"a": 20, MASK: 20, "c": 20}, config)


# -------------------------------------------------------------- (b) first word with many values
def sessions(names: list[str]) -> list[str]:
    return [f"{name} opened a session from the console on tty{i % 4}" for i, name in enumerate(names)]


def test_a_first_word_with_many_values_does_not_split_the_template() -> None:
    miner, texts = learnt(sessions(NAMES[:30]))
    assert set(texts) == {"<*> opened a session from the console on <*>"}
    unseen_name = miner.match("zu opened a session from the console on tty1")
    assert unseen_name.known and unseen_name.template == texts[0]
    base, base_texts = learnt(sessions(NAMES[:30]), MinerConfig(merge_first_words=False))
    assert len(set(base_texts)) == 30
    assert not base.match("zu opened a session from the console on tty1").known


def test_few_first_words_stay_apart_as_drain_keeps_them() -> None:
    _, texts = learnt(sessions(NAMES[:5]))
    assert len(set(texts)) == 5 and texts[0].startswith(NAMES[0] + " ")


def test_two_word_messages_merge_on_a_shared_word_but_not_on_masks() -> None:
    miner, texts = learnt([f"{name} started" for name in NAMES[:20]])
    assert set(texts) == {"<*> started"}
    assert miner.match("zu started").known
    _, masks_only = learnt([f"{name} job_{i}" for i, name in enumerate(NAMES[:20])])
    assert len(set(masks_only)) == 20  # "<*> <*>" shares nothing: no merge
    assert first_word_similarity(["a", MASK], ["b", MASK]) == 0.5
    assert first_word_similarity(["a", "x", MASK], ["b", "x", MASK]) == 2 / 3


def test_a_merge_rewrites_earlier_ids_and_handles_follow_it() -> None:
    """An id read during training can change (documented): handles give the final one."""
    miner = TemplateMiner()
    lines = sessions(NAMES[:20])
    first = miner.learn_cluster(lines[0])
    early = miner.final_template(first)
    for line in lines[1:]:
        miner.learn_cluster(line)
    late = miner.final_template(first)
    assert early.template.startswith(NAMES[0]) and late.template.startswith(MASK)
    assert early.template_id != late.template_id == template_id(late.template)
    assert miner.template_counts() == {late.template_id: 20}


def test_the_merge_reshapes_drains_tree() -> None:
    """The merge edits drain3 internals: emptied first-word branches go, the cluster sits under <*>."""
    miner, _ = learnt(sessions(NAMES[:20]))
    length = len(mask_tokens_raw(sessions(NAMES[:1])[0])[0])
    node = miner._drain.root_node.key_to_child_node[str(length)]
    assert list(node.key_to_child_node) == [MASK]
    (cid,) = node.key_to_child_node[MASK].cluster_ids
    assert list(miner._drain.id_to_cluster) == [cid]
    assert miner._drain.id_to_cluster[cid].size == 20
    assert miner._stats[cid].values[0] is None  # more first words than are tracked: a variable


# --------------------------------------------------------------- (c) digits that never vary
def alerts(n: int, status: str = "1") -> list[str]:
    return [f"ALERT job {1000 + i} exited abnormally with [{status}]" for i in range(n)]


def test_a_digit_word_that_never_varies_is_put_back() -> None:
    miner, texts = learnt(alerts(25))
    assert set(texts) == {"ALERT job <*> exited abnormally with [1]"}
    other = miner.match("ALERT job 7 exited abnormally with [2]")
    assert not other.known and other.template == "ALERT job <*> exited abnormally with [<*>]"
    assert miner.match("ALERT job 8 exited abnormally with [3]").template_id == other.template_id
    assert miner.match("ALERT job 9 exited abnormally with [1]").known
    _, without = learnt(alerts(25), MinerConfig(keep_fixed_digits=False))
    assert set(without) == {"ALERT job <*> exited abnormally with [<*>]"}


def test_few_lines_are_no_evidence_for_a_digit_word() -> None:
    _, texts = learnt(alerts(19))
    assert set(texts) == {"ALERT job <*> exited abnormally with [<*>]"}


@pytest.mark.parametrize(
    "word", ["10.0.0.1", "port=50010", "/data/disk2/part-3", "host7.example.com", "aa:bb:cc:dd:ee:f1", "pid=1234"]
)
def test_addresses_long_numbers_and_paths_stay_masked_even_when_constant(word: str) -> None:
    _, texts = learnt([f"probe {i} sent to {word}" for i in range(30)])
    assert set(texts) == {f"probe <*> sent to {mask(word)}"} and word not in texts[0]


def test_fixed_words_need_the_same_raw_word_on_every_line() -> None:
    tokens, raw = mask_tokens_raw("exit code [1]")
    stats = ClusterStats.empty(tokens, raw)
    for _ in range(30):
        stats.add(tokens, raw, 12)
    template = tuple(tokens)
    assert fixed_words(template, stats, MinerConfig()) == {2: "[1]"}
    other_tokens, other_raw = mask_tokens_raw("exit code [2]")
    stats.add(other_tokens, other_raw, 12)
    assert fixed_words(template, stats, MinerConfig()) == {}


# -------------------------------------------------------------------------------- identity
def mixed_lines() -> list[str]:
    return [
        *accounts({"alpha": 20, "beta": 12, "gamma": 8}),
        *sessions(NAMES[:30]),
        *alerts(25),
        *(f"{name} started" for name in NAMES[:20]),
        "cupsd startup succeeded",
        "cupsd shutdown succeeded",
    ]


def test_two_miners_fed_the_same_lines_give_the_same_ids() -> None:
    lines = mixed_lines()
    a, b = TemplateMiner(), TemplateMiner()
    ha, hb = [a.learn_cluster(x) for x in lines], [b.learn_cluster(x) for x in lines]
    assert [a.final_template(h) for h in ha] == [b.final_template(h) for h in hb]
    assert a.templates() == b.templates() and a.template_counts() == b.template_counts()
    assert json.dumps(a.to_state(), sort_keys=True) == json.dumps(b.to_state(), sort_keys=True)


def test_ids_survive_a_save_and_load_and_learning_goes_on_alike() -> None:
    lines = mixed_lines()
    original = TemplateMiner()
    for line in lines[:50]:  # stop in the middle of the first-word lines: the merge is still to come
        original.learn_cluster(line)
    restored = TemplateMiner.from_state(json.loads(json.dumps(original.to_state())))
    assert restored.templates() == original.templates()
    rest_o = [original.learn_cluster(x) for x in lines[50:]]
    rest_r = [restored.learn_cluster(x) for x in lines[50:]]
    assert [original.final_template(h) for h in rest_o] == [restored.final_template(h) for h in rest_r]
    assert restored.to_state() == original.to_state()
    probes = [*lines, "zu opened a session from the console on tty3", "ALERT job 1 exited abnormally with [9]"]
    assert [restored.match(x) for x in probes] == [original.match(x) for x in probes]


def test_a_state_written_before_the_rules_keeps_its_ids() -> None:
    """data/miner_state_v1.json was written by the miner of commit f331b04, before these rules."""
    saved: dict[str, Any] = json.loads((DATA / "miner_state_v1.json").read_text(encoding="utf-8"))
    assert saved["state"]["version"] == 1
    old = TemplateMiner.from_state(saved["state"])
    assert old.templates() == saved["templates"]
    assert [old.match(x).template_id for x in saved["lines"]] == saved["matched"]
    assert all(getattr(old.config, flag) is False for flag in RULES_OFF)
    # The same lines under today's rules give other templates: the test above means something.
    _, today = learnt(saved["lines"])
    assert set(today) != set(saved["templates"].values())


def test_unknown_state_versions_are_refused_with_a_hint() -> None:
    state = TemplateMiner().to_state()
    with pytest.raises(ValueError, match="version 9.*retrain"):
        TemplateMiner.from_state({**state, "version": 9})


# -------------------------------------------------------------------------------- hostile
@pytest.mark.parametrize(
    "message",
    [
        "x" * 65536,
        " ".join(f"w{i}" for i in range(9000))[:65536],
        " ".join(["word"] * 13000),
        "bad \ud800 half \udfff here",
        "4815162342",
        "",
        "   ",
    ],
    ids=["64KiB-token", "64KiB-digits", "64KiB-words", "lone-surrogates", "only-digits", "empty", "blank"],
)
def test_hostile_messages_go_through_the_miner(message: str) -> None:
    miner = TemplateMiner()
    start = time.perf_counter()
    handles = [miner.learn_cluster(message) for _ in range(3)]
    handles.append(miner.learn_cluster("a normal line 1"))
    final = miner.final_template(handles[0])
    assert final.template_id == template_id(final.template)
    final.template.encode("utf-8")  # no lone surrogate left in a template
    assert miner.match(message) == final
    restored = TemplateMiner.from_state(json.loads(json.dumps(miner.to_state())))
    assert restored.match(message) == final
    assert time.perf_counter() - start < 10


def test_lone_surrogates_become_replacement_characters() -> None:
    miner = TemplateMiner()
    miner.learn("disk \ud83d failed")
    assert miner.match("disk \ud83d failed").template == "disk \ufffd failed"


def test_lines_of_digits_share_one_template() -> None:
    miner, texts = learnt([str(10**9 + 7 * i) for i in range(30)])
    assert set(texts) == {MASK}
    assert miner.match("31415926535").known


def test_the_rest_index_finds_what_a_full_scan_finds() -> None:
    """The word index is a shortcut for a scan over all clusters of a length: it must never miss one."""
    from pipeline.stages import template_tree

    miner = TemplateMiner()
    lines = [*sessions(NAMES[:12]), *accounts({"alpha": 5, "beta": 5}), *(f"{n} started" for n in NAMES[:12])]
    lines += [f"{n} opened a session from the {w} on tty1" for n, w in zip(NAMES[12:20], NAMES[20:28], strict=True)]
    for line in lines:
        miner.learn_cluster(line)  # templates generalise and merge after their words were indexed
    index = miner._rest_index
    assert index is not None and miner._merged_into  # so the index holds stale entries
    config = MinerConfig(max_enum_values=2)  # any three first words are "many": siblings get listed
    listed = 0
    for cluster in miner._drain.clusters:
        full = template_tree.first_word_siblings(miner._drain, cluster, miner._stats, config)
        fast = template_tree.first_word_siblings(miner._drain, cluster, miner._stats, config, index)
        assert [c.cluster_id for c in fast] == [c.cluster_id for c in full]
        listed += len(full)
    assert listed > 0
