"""Training over inputs larger than memory: streaming templates and windows, a bounded reservoir for the fit.

``logwarden train`` reads its lines from files, a Kafka time range or an Elasticsearch index
(:mod:`pipeline.sources`); whichever it is, the lines go through the one record chain once, as in
:mod:`pipeline.embedded`, and the model is fitted from what that pass kept:

* the **template miner** learns every line (its memory grows with the templates, not with the lines);
* every closed **window** is reduced at once to its count vector (template handle -> count) and offered to a
  reservoir sample (Algorithm R, seeded) of at most ``sample_windows`` windows: memory stays bounded whatever
  the input size, and each window has the same chance to be kept. The window count in the manifest is the
  count of all windows;
* at the end handles become final template ids (:meth:`TemplateMiner.final_template`) and the feature space,
  the forest and its threshold are fitted on the sample. When the sample times the vocabulary would exceed
  :data:`MAX_MATRIX_CELLS`, a uniform subset of the sample is used (a uniform subset of a uniform sample is
  uniform), so the dense feature matrix stays within a few hundred MB.

With no more windows than ``sample_windows`` the sample is every window, in order, and the model is the one
:func:`pipeline.embedded.train` would fit on the same lines.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from models.artifacts import ModelBundle
from pipeline.config import PipelineSettings
from pipeline.embedded import (
    Input,
    JobStats,
    _finish_decode_stats,
    fit_counts,
    training_flags_of,
    training_warnings,
    warm_miner,
    windowed,
)
from pipeline.errors import LogwardenError
from pipeline.records import RawLine, TemplateMatch
from pipeline.sources.files import read_lines
from pipeline.stages.chain import RecordChain
from pipeline.stages.templates import TemplateMiner

DEFAULT_SAMPLE_WINDOWS = 50_000
MAX_MATRIX_CELLS = 8_000_000  # sample windows x vocabulary columns (float64: 64 MB per matrix)
ENTITY_COUNT_CAP = 10_000  # entities are counted for messages only; beyond this "at least" is enough

WindowProgress = Callable[[int, int], object]  # (lines, windows) so far


class Reservoir:
    """A uniform sample of at most ``size`` items of a stream (Algorithm R), in arrival order until full."""

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 1:
            raise LogwardenError(f"--sample-windows must be at least 1, got {size}")
        self.size = size
        self.seen = 0
        self.items: list[Any] = []
        self._random = random.Random(seed)

    def offer(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        slot = self._random.randrange(self.seen)
        if slot < self.size:
            self.items[slot] = item

    def subset(self, items: list[Any], size: int) -> list[Any]:
        """A uniform subset of ``items`` (the sample, or a list parallel to it), in their order."""
        if size >= len(items):
            return list(items)
        keep = sorted(self._random.sample(range(len(items)), size))
        return [items[i] for i in keep]


def counted(lines: Iterator[RawLine], progress: Callable[[int], object] | None,
            every: int = 1000) -> Iterator[RawLine]:
    """``lines``, calling ``progress(n)`` every ``every`` lines (a line-counting tqdm ``update``)."""
    n = 0
    for line in lines:
        yield line
        n += 1
        if progress is not None and n % every == 0:
            progress(every)
    if progress is not None and n % every:
        progress(n % every)


def train_files(paths: Sequence[str], settings: PipelineSettings, progress: Callable[[int], object] | None = None,
                **options: Any) -> ModelBundle:
    """:func:`train_stream` over files (``progress`` gets bytes read, as :func:`read_lines` gives them)."""
    return train_stream(read_lines(paths, max_line_bytes=settings.max_line_bytes, progress=progress), settings,
                        **options)


def train_stream(lines: Iterator[RawLine], settings: PipelineSettings, *, force: bool = False,
                 warm_start: ModelBundle | None = None, sample_windows: int = DEFAULT_SAMPLE_WINDOWS,
                 seed: int = 0, on_progress: WindowProgress | None = None) -> ModelBundle:
    """One pass over ``lines``; a model fitted on a reservoir sample of its windows (see the module doc)."""
    miner = warm_miner(warm_start) if warm_start is not None else TemplateMiner.for_settings(settings.max_templates)
    stats = JobStats()
    reservoir = Reservoir(sample_windows, seed)
    entities: set[tuple[str, str]] = set()

    def tag(message: str) -> TemplateMatch:
        return TemplateMatch(template_id=str(miner.learn_cluster(message)), template="")

    source = Input((), settings, None, stats, lines=lines)  # --log-format auto picks its preset here
    settings = source.settings
    chain = RecordChain(settings, tag)
    preset_made: dict[str, str] = {}  # a preset's templates (access logs) come with their final id and text
    for batch in windowed(chain, source.lines(chain.decoder), stats, settings):
        for window in batch:
            for h in window.counts:
                if not h.isdigit() and h not in preset_made:
                    preset_made[h] = window.templates.get(h, "")
            reservoir.offer((dict(window.counts), window.count))
            if len(entities) < ENTITY_COUNT_CAP:
                entities.add((window.entity_field, window.entity_id))
        if on_progress is not None:
            on_progress(stats.lines, stats.windows)
    _finish_decode_stats(stats, chain.decoder)
    if not reservoir.seen:
        raise LogwardenError(
            f"no windows: none of {stats.lines} lines had an entity"
            + (f" matching --entity-regex {settings.entity_regex!r}" if settings.entity_regex else ""))

    final: dict[str, TemplateMatch] = {}
    templates: dict[str, str] = {}
    sample: list[dict[str, int]] = []
    bundle_settings = settings
    for counts, _ in reservoir.items:
        remapped: dict[str, int] = {}
        for handle, n in counts.items():
            match = final.get(handle)
            if match is None:
                match = final[handle] = (miner.final_template(int(handle)) if handle.isdigit()
                                         else TemplateMatch(handle, preset_made[handle]))
                templates[match.template_id] = match.template
            remapped[match.template_id] = remapped.get(match.template_id, 0) + n
        sample.append(remapped)
    stats.templates = len(templates)
    limit = max(1, MAX_MATRIX_CELLS // max(1, len(templates)))
    sample = reservoir.subset(sample, limit)
    stats.warnings = training_warnings(stats.windows, len(entities), settings, force)
    if miner.other_lines:
        stats.warnings.append(
            f"{miner.other_lines} lines fit none of the {settings.max_templates} templates and went to one 'other' "
            "template (--max-templates): the input holds more distinct messages than any log's statements")
    stats.flags, odd = training_flags_of(stats.windows, [lines for _, lines in reservoir.items])
    stats.warnings.extend(odd)
    bundle = fit_counts(miner, sample, templates, bundle_settings, stats, seed)
    bundle.stats["sampled_windows"] = len(sample)
    return bundle
