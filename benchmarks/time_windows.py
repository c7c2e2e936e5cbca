"""Time-window detection benchmark: real Loghub-2k lines in tumbling windows, with injected incidents.

The HDFS benchmark has session windows of one kind of system. Most users window by time (per host or per
component), so this benchmark builds tumbling windows of every shared Loghub-2k system
(:data:`benchmarks.loghub.SYSTEMS`) and injects incidents whose labels are known by construction.

How the windows are made (per system, from ``random.Random(seed)``):

* the system's 2,000 lines in file order, each with its ground-truth template (``EventId``): templates are
  taken from the ground truth so that this benchmark measures detection, not parsing (parsing has its own
  benchmark, :mod:`benchmarks.parsing`);
* a **normal window** is a contiguous run of the real log (order and co-occurrence kept, as a time window
  of one host/component sees it), starting anywhere and ``1 + Poisson(30)`` lines long, wrapping at the end;
* one template is **held out** (never in any normal window): the rarest template with at least two lines
  (ties: the first in the file), standing for an error message the system never wrote in training;
* one template is made **periodic** (a heartbeat): the most frequent other template's lines are taken out
  of the runs and every window holds ``max(1, round(its mean count per run))`` of them instead.

Training: 600 normal windows. Test: 400 windows of which 40 are incidents, 10 of each kind:

* ``unseen_burst``: a normal window plus 5-20 lines of the held-out template;
* ``rate_x10``: a normal window in which the template held by most training windows (after the periodic
  one) is written ten times as often (at least 10 lines more);
* ``periodic_stops``: a normal window without its heartbeat lines;
* ``mix_change``: the same number of lines drawn uniformly from the training vocabulary (every template
  known, but in proportions the system never shows).

Training windows are all normal here, so the JSON also gives ours' false-positive rate and recall at the
``--contamination clean`` threshold (``clean_fpr``, ``clean_recall``). Both systems score the same windows.
Ours: :class:`models.features.FeatureSpace` and :class:`models.detector.WindowDetector` with their defaults.
Reference: loglizer's recipe (:mod:`benchmarks.reference`): raw count vectors over the training vocabulary
and ``IsolationForest(max_samples=0.9999, contamination=0.03)``. Metric: PR-AUC (threshold-free), plus ours'
false-positive rate, recall and recall per incident kind at its own (default) threshold. Usage::

    python -m benchmarks.time_windows [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score

from benchmarks.loghub import SYSTEMS, load_sample
from models.detector import WindowDetector
from models.features import FeatureSpace

TRAIN_WINDOWS = 600
TEST_NORMAL = 360
PER_KIND = 10
KINDS = ("unseen_burst", "rate_x10", "periodic_stops", "mix_change")
MEAN_LINES = 30


def held_out_template(ids: Sequence[str]) -> str:
    """The rarest template with at least two lines (the first in file order among equals)."""
    counts = Counter(ids)
    candidates = [tid for tid in dict.fromkeys(ids) if counts[tid] >= 2]
    return min(candidates, key=lambda tid: counts[tid])


def periodic_template(ids: Sequence[str], held: str) -> tuple[str, int]:
    """The most frequent template other than ``held`` and its steady count per window."""
    counts = Counter(tid for tid in ids if tid != held)
    tid = max(sorted(counts), key=lambda t: counts[t])
    return tid, max(1, round(MEAN_LINES * counts[tid] / len(ids)))


def normal_window(ids: Sequence[str], held: str, rng: random.Random, periodic: tuple[str, int]) -> Counter[str]:
    length = 1 + int(np.random.default_rng(rng.getrandbits(32)).poisson(MEAN_LINES))
    start = rng.randrange(len(ids))
    window: Counter[str] = Counter()
    i = start
    while sum(window.values()) < length and i < start + 4 * len(ids):
        tid = ids[i % len(ids)]
        if tid not in (held, periodic[0]):
            window[tid] += 1
        i += 1
    window[periodic[0]] = periodic[1]
    return window


def inject(kind: str, window: Counter[str], held: str, regular: str, periodic: str, vocabulary: Sequence[str],
           rng: random.Random) -> Counter[str]:
    out = Counter(window)
    if kind == "unseen_burst":
        out[held] += rng.randint(5, 20)
    elif kind == "rate_x10":
        out[regular] = max(10 * out[regular], out[regular] + 10)
    elif kind == "periodic_stops":
        out.pop(periodic, None)
        if not out:  # a window that held nothing else still has lines: the rest of the log goes on
            out[rng.choice([v for v in vocabulary if v != periodic] or [periodic])] += 1
    elif kind == "mix_change":
        out = Counter(rng.choice(list(vocabulary)) for _ in range(sum(window.values())))
    else:
        raise ValueError(kind)
    return out


def build(system: str, seed: int) -> dict[str, Any]:
    """Training windows, test windows with their kinds (``normal`` or an incident kind)."""
    ids = load_sample(system).event_ids
    rng = random.Random(f"{system}-{seed}")
    held = held_out_template(ids)
    periodic = periodic_template(ids, held)
    train = [normal_window(ids, held, rng, periodic) for _ in range(TRAIN_WINDOWS)]
    presence = Counter(tid for w in train for tid in w if tid != periodic[0])
    regular = max(sorted(presence), key=lambda tid: presence[tid])
    vocabulary = sorted(presence) + [periodic[0]]
    test: list[tuple[str, Counter[str]]] = [("normal", normal_window(ids, held, rng, periodic))
                                            for _ in range(TEST_NORMAL)]
    for kind in KINDS:
        for _ in range(PER_KIND):
            window = normal_window(ids, held, rng, periodic)
            test.append((kind, inject(kind, window, held, regular, periodic[0], vocabulary, rng)))
    rng.shuffle(test)
    return {"train": train, "test": test, "held_out": held, "regular": regular,
            "regular_share": presence[regular] / TRAIN_WINDOWS}


def run_system(system: str, seed: int) -> dict[str, Any]:
    data = build(system, seed)
    train, test = data["train"], data["test"]
    kinds = [k for k, _ in test]
    y = np.array([k != "normal" for k in kinds], dtype=int)
    space = FeatureSpace().fit(train, {})
    det = WindowDetector(random_state=seed, window_kind="tumbling").fit(space.transform(train))
    X = space.transform([w for _, w in test])
    scores = det.score(X)
    flags = scores > det.threshold_
    raw_train, raw_test = space.count_matrix(train), space.count_matrix([w for _, w in test])
    forest = IsolationForest(max_samples=0.9999, contamination=0.03, random_state=seed).fit(raw_train)
    reference = -forest.score_samples(raw_test)
    parts = det.components(X)
    result: dict[str, Any] = {
        "system": system, "templates": len(space.vocabulary_), "held_out": data["held_out"],
        "regular": data["regular"], "regular_share": round(data["regular_share"], 3),
        "ours_pr_auc": round(float(average_precision_score(y, scores)), 4),
        "reference_pr_auc": round(float(average_precision_score(y, reference)), 4),
        "ours_fpr": round(float(flags[y == 0].mean()), 4),
        "ours_recall_all": round(float(flags[y == 1].mean()), 4),
        "contamination_estimate": round(float(det.contamination_estimate_), 4),
        # the same scores with --contamination clean (the training windows here are all normal)
        "clean_fpr": round(float((scores[y == 0] > -np.log10(det.target_fpr)).mean()), 4),
        "clean_recall": round(float((scores[y == 1] > -np.log10(det.target_fpr)).mean()), 4),
        "threshold": round(float(det.threshold_), 3),

        "ours_recall": {k: round(float(np.mean([f for f, kk in zip(flags, kinds, strict=True) if kk == k])), 2)
                        for k in KINDS},
        "component_pr_auc": {name: round(float(average_precision_score(y, v)), 4) for name, v in parts.items()},
    }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.time_windows", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="JSON on stdout, the table on stderr")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = [run_system(system, args.seed) for system in SYSTEMS]
    report = {
        "benchmark": "time-windows", "seed": args.seed, "systems": rows,
        "mean_ours_pr_auc": round(float(np.mean([r["ours_pr_auc"] for r in rows])), 4),
        "mean_reference_pr_auc": round(float(np.mean([r["reference_pr_auc"] for r in rows])), 4),
        "mean_fpr": round(float(np.mean([r["ours_fpr"] for r in rows])), 4),
        "mean_recall": round(float(np.mean([r["ours_recall_all"] for r in rows])), 4),
        "mean_clean_fpr": round(float(np.mean([r["clean_fpr"] for r in rows])), 4),
        "mean_clean_recall": round(float(np.mean([r["clean_recall"] for r in rows])), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = sys.stderr if args.json else sys.stdout
    print(f"{'system':<11}{'ours':>7}{'loglizer':>9}{'FPR':>7}{'recall':>7}  PR-AUC ours, loglizer; ours' FPR, recall "
          "and recall per kind at its default threshold | PR-AUC of each component alone", file=out)
    for r in rows:
        recall = " ".join(f"{k}={v:.1f}" for k, v in r["ours_recall"].items())
        comps = " ".join(f"{k}={v:.2f}" for k, v in r["component_pr_auc"].items())
        print(f"{r['system']:<11}{r['ours_pr_auc']:>7.3f}{r['reference_pr_auc']:>9.3f}{r['ours_fpr']:>7.3f}"
              f"{r['ours_recall_all']:>7.3f}  "
              f"{recall} | {comps} | contamination est. {r['contamination_estimate']:.3f}", file=out)
    print(f"{'mean':<11}{report['mean_ours_pr_auc']:>7.3f}{report['mean_reference_pr_auc']:>9.3f}"
          f"{report['mean_fpr']:>7.3f}{report['mean_recall']:>7.3f}  ({report['seconds']} s)", file=out)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
