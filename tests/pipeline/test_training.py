"""Bounded-memory training: the reservoir, equality with the in-memory fit when everything fits, the bound."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pipeline import embedded as jobs
from pipeline import training
from pipeline.config import PipelineSettings
from pipeline.errors import LogwardenError
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "examples" / "hdfs_sample.log"
SETTINGS = PipelineSettings(log_format="<Date> <Time> <Pid> <Level> <Component>: <Content>",
                            entity_regex=r"blk_-?\d+")


def test_reservoir_is_uniform_and_bounded() -> None:
    hits: Counter[int] = Counter()
    for seed in range(400):
        reservoir = training.Reservoir(10, seed)
        for i in range(100):
            reservoir.offer(i)
        assert len(reservoir.items) == 10 and reservoir.seen == 100
        hits.update(reservoir.items)
    # Each of the 100 items is kept with probability 1/10: about 40 times in 400 runs (sd 6).
    assert len(hits) == 100 and min(hits.values()) > 15 and max(hits.values()) < 70
    small = training.Reservoir(10)
    for i in range(5):
        small.offer(i)
    assert small.items == [0, 1, 2, 3, 4]  # in arrival order until full
    with pytest.raises(LogwardenError, match="at least 1"):
        training.Reservoir(0)


def test_streaming_training_fits_the_in_memory_model_when_every_window_fits() -> None:
    streamed = training.train_files([str(SAMPLE)], SETTINGS)
    in_memory = jobs.train([str(SAMPLE)], SETTINGS)
    assert streamed.features.vocabulary_ == in_memory.features.vocabulary_
    assert streamed.stats["windows"] == in_memory.stats["windows"] == streamed.stats["sampled_windows"]
    assert streamed.stats["templates"] == in_memory.stats["templates"]
    assert streamed.detector.threshold_ == pytest.approx(in_memory.detector.threshold_)
    X = in_memory.features.transform([{t: 1} for t in in_memory.features.vocabulary_[:20]])
    assert np.allclose(streamed.detector.score(X), in_memory.detector.score(X))


def test_the_fit_uses_at_most_the_sample_but_counts_every_window() -> None:
    bundle = training.train_files([str(SAMPLE)], SETTINGS, sample_windows=200, force=True)
    assert bundle.stats["windows"] > 900 and bundle.stats["sampled_windows"] == 200
    assert bundle.detector.n_train_ == 200


def test_the_matrix_bound_subsamples_the_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "MAX_MATRIX_CELLS", 100 * 30)
    bundle = training.train_files([str(SAMPLE)], SETTINGS, force=True)
    templates = bundle.stats["templates"]
    assert bundle.stats["sampled_windows"] == (100 * 30) // templates < bundle.stats["windows"]


def test_max_templates_bounds_the_vocabulary_and_says_so() -> None:
    from dataclasses import replace  # noqa: PLC0415

    from pipeline.stages.templates import OTHER_TEMPLATE  # noqa: PLC0415

    capped = training.train_files([str(SAMPLE)], replace(SETTINGS, max_templates=5))
    assert OTHER_TEMPLATE in capped.features.templates_.values()
    assert capped.miner_state["other_lines"] > 0
    assert len(capped.miner_state["clusters"]) == 5
    assert any("--max-templates" in w for w in capped.stats["warnings"])
    assert not any("--max-templates" in w for w in training.train_files([str(SAMPLE)], SETTINGS).stats["warnings"])
    with pytest.raises(LogwardenError, match="max-templates"):
        PipelineSettings().merged({"max_templates": 0})
