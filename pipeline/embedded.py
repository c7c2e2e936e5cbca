"""End-to-end jobs over files: ``train``, ``detect`` and ``parse``.

These read files and push every line through the one per-record chain (:mod:`pipeline.stages.chain`:
decode -> event time -> entity -> template -> window), then score; the streaming worker pushes Kafka records
through the same chain, so both find the same windows.

Training is one pass: the miner learns templates while records are windowed by Drain's cluster
handle, and when the input ends every handle is mapped to its *final* template id (templates
generalise while Drain learns, and ids are hashes of template text, so ids are only final at the end).
Detecting without a model trains on the input and scores those same windows: no second read, so
stdin works too.

Two job-level rules guard against results that look fine but mean nothing (both are decided here, from
the counts, not in the stages):

* **Untimed input.** Windows are cut by event time. When more than half of the windowed lines carry no
  timestamp the decoder could read (a layout whose time is not auto-detected, e.g. HealthApp's
  ``20171223-22:15:29:606`` or Proxifier's ``[10.30 16:49:06]``, without ``--time-format``), ``train`` and
  ``detect`` stop with a hint, after the first :data:`UNTIMED_CHECK_LINES` lines and again at the end.
  ``--allow-untimed`` (stored with the model) windows such input anyway, on the event clock's fallback.
* **Too few training windows.** A model fitted on fewer than :data:`MIN_TRAINING_WINDOWS` windows is refused
  unless forced (``--force``); one whose calibration rests on fewer than :data:`MIN_EXPECTED_ANOMALIES`
  expected abnormal windows (a given ``contamination`` x windows) is fitted with a warning, stored with its stats.
* **Small or odd training sets.** Fewer than :data:`SMALL_TRAINING_WINDOWS` windows, or a median window of at
  most :data:`SHORT_WINDOW_LINES` lines: a warning, and a flag (``few_windows``, ``short_windows``) in the
  manifest's stats and on every document (``model.warnings``). ``detect`` warns when more than
  :data:`UNSEEN_WINDOW_SHARE` of the windows hold templates the model never saw.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from models.artifacts import ModelBundle
from models.detector import WindowDetector
from models.evaluation import entity_metrics
from models.features import FeatureSpace
from pipeline.config import PipelineSettings
from pipeline.errors import LogwardenError
from pipeline.records import RawLine, TemplateMatch, Window
from pipeline.scoring import Scorer
from pipeline.sources.files import peek_lines, read_lines
from pipeline.stages import presets
from pipeline.stages.assembly import ASSEMBLERS, Assembler, assembled
from pipeline.stages.chain import RecordChain, make_decoder
from pipeline.stages.decoding import Decoder, DecodeStats, check_format_matches
from pipeline.stages.formats import TEMPLATE_FIELD
from pipeline.stages.multiline import Joiner, joined, joiner_for
from pipeline.stages.templates import TemplateMiner, template_id

Progress = Callable[[int], object]
# Windows scored at once. 2,048 made the scorer alone 0.3-0.5 us/line cheaper on one-line sessions and buckets, but
# the whole pipeline no faster (more windows held, colder memory): measured equal within noise, so 512 stays.
SCORE_BATCH = 512
FORMAT_CHECK_LINES = 100
UNTIMED_CHECK_LINES = 1000
MIN_TRAINING_WINDOWS = 50
MIN_EXPECTED_ANOMALIES = 5
SMALL_TRAINING_WINDOWS = 300  # below this a 1-in-n tail probability cannot reach the clean threshold's level
SHORT_WINDOW_LINES = 2  # a median window of this many lines or fewer holds almost no combination to learn
UNSEEN_WINDOW_SHARE = 0.2  # detect: more windows than this holding new templates means the model is stale


@dataclass
class JobStats:
    """What a job read and did; printed by the CLI and stored in the model manifest."""

    lines: int = 0
    no_entity: int = 0
    windows: int = 0
    late_records: int = 0
    anomalies: int = 0
    templates: int = 0
    unseen_templates: int = 0
    untimed: int = 0
    preset: str | None = None  # the preset --log-format auto picked
    multiline_records: int = 0  # records joined from several lines (``lines`` counts records)
    multiline_lines: int = 0  # the lines in them
    multiline_cut: int = 0  # records a bound ended (--multiline-max-lines, --max-line-bytes)
    partial_lines_joined: int = 0  # CRI / Docker pieces put back together
    decode: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # Short codes of the warnings about the training set (``few_windows``, ``short_windows``): stored in the
    # manifest and copied onto every document as ``model.warnings``.
    flags: list[str] = field(default_factory=list)
    unseen_windows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class Input:
    """The input's lines, opened before the chain so ``--log-format auto`` can pick a preset from the first ones.

    ``settings`` are the job's settings with the picked preset applied; :meth:`lines` checks on the first lines
    that the layout matches at all, then yields every line.
    """

    def __init__(self, paths: Sequence[str], settings: PipelineSettings, progress: Progress | None,
                 stats: JobStats, lines: Iterator[RawLine] | None = None) -> None:
        """``lines`` replaces reading ``paths`` (a Kafka time range, an Elasticsearch index)."""
        source: Iterator[RawLine] = lines if lines is not None else read_lines(
            paths, max_line_bytes=settings.max_line_bytes, progress=progress)
        self.head, self.source = peek_lines(source, FORMAT_CHECK_LINES)
        self.assembler: Assembler | None = None
        self.joiner: Joiner | None = None
        if settings.log_format == presets.AUTO:
            settings = pick_preset(settings, [raw.data.decode("utf-8", "replace") for raw in self.head])
            stats.preset = settings.preset
        self.settings = settings

    def lines(self, decoder: Decoder) -> Iterator[RawLine]:
        check_format_matches(decoder, self.head)
        preset = presets.get(self.settings.preset) if self.settings.preset else None
        kind = preset.assembly if preset is not None else None
        self.assembler = ASSEMBLERS[kind](self.settings.max_line_bytes) if kind else None
        self.joiner = joiner_for(self.settings, decoder.starts_record)
        yield from joined(assembled(self.source, self.assembler), self.joiner)

    def finish(self, stats: JobStats) -> None:
        """Copy what assembly and joining did into the job's stats."""
        joiner = self.joiner
        if joiner is not None:
            stats.multiline_records = joiner.stats.records
            stats.multiline_lines = joiner.stats.lines
            stats.multiline_cut = joiner.stats.cut
        assembler = self.assembler
        if assembler is not None:
            stats.partial_lines_joined = assembler.stats.pieces


def pick_preset(settings: PipelineSettings, head: list[str]) -> PipelineSettings:
    """``settings`` with the preset that reads most of ``head`` applied (``--log-format auto``).

    Options that differ from their defaults count as given, so they override the preset's parts as a flag would.
    """
    defaults = PipelineSettings()
    given = {f.name: getattr(settings, f.name) for f in fields(settings)
             if f.name not in ("log_format", "preset") and getattr(settings, f.name) != getattr(defaults, f.name)}
    trial = replace(settings, log_format=presets.AUTO)
    decoders: dict[str, Decoder] = {}

    def fits(preset: presets.Preset, text: str) -> bool:
        decoder = decoders.get(preset.name)
        if decoder is None:
            candidate = replace(trial, preset=preset.name, **presets.get(preset.name).settings)
            decoder = decoders[preset.name] = make_decoder(candidate, "auto" if preset.json_keys else "off")
        if preset.json_keys:
            try:
                obj = json.loads(text)
            except ValueError:
                return False
            if not isinstance(obj, dict) or not all(key in obj for key in preset.json_keys):
                return False
        elif decoder.log_format is None:
            return False
        record = decoder.decode_text(text)
        return record.timestamp is not None and not {"unmatched", "bad_timestamp"}.intersection(record.flags)

    chosen = presets.pick(head, fits)
    preset = presets.get(chosen.name)
    picked = settings.merged(presets.apply(chosen.name, given))
    return replace(picked, log_format=preset.log_format, preset=chosen.name)


def windowed(chain: RecordChain, lines: Iterator[RawLine], stats: JobStats,
             settings: PipelineSettings) -> Iterator[list[Window]]:
    """Yield batches of closed windows as the watermark moves, then the flushed rest at end of input.

    The lines, untimed records and records without an entity are counted in ``stats`` by
    :meth:`RecordChain.windows_of`, which checks :func:`check_timed` after the first :data:`UNTIMED_CHECK_LINES`."""
    for closed in chain.windows_of(lines, stats, lambda: check_timed(stats, settings, chain.decoder),
                                   UNTIMED_CHECK_LINES):
        stats.windows += len(closed)
        yield closed
    check_timed(stats, settings, chain.decoder)
    final = chain.flush()
    stats.windows += len(final)
    stats.late_records = chain.late_records
    if final:
        yield final


def check_timed(stats: JobStats, settings: PipelineSettings, decoder: Decoder) -> None:
    """Refuse to window input most of whose lines have no readable timestamp (see the module docstring)."""
    if settings.allow_untimed or stats.untimed * 2 <= stats.lines:
        return
    if decoder.stats.json * 2 > stats.lines:
        how = ("the JSON records need an @timestamp, timestamp, time or ts field; give --time-format when its "
               "layout is not auto-detected")
    elif settings.time_format:
        how = f"check that --time-format {settings.time_format!r} fits the lines' timestamps"
    elif settings.log_format:
        how = ("give --time-format (e.g. '%Y%m%d-%H:%M:%S:%f') and name the time field <Date>, <Time> or "
               "<Timestamp> in --log-format")
    else:
        how = ("give --time-format for the timestamp that starts each line (e.g. '%Y%m%d-%H:%M:%S:%f'), or "
               "--log-format with a <Time> field")
    raise LogwardenError(
        f"{stats.untimed} of {stats.lines} lines have no timestamp Logwarden could read, so windows would "
        f"follow arrival order instead of event time: {how}, or pass --allow-untimed to window them anyway"
    )


def training_flags(windows: Sequence[Window]) -> tuple[list[str], list[str]]:
    """``(flags, warnings)`` for a small or odd training set (see the module docstring)."""
    return training_flags_of(len(windows), [w.count for w in windows])


def training_flags_of(n: int, line_counts: Sequence[int]) -> tuple[list[str], list[str]]:
    """:func:`training_flags` from the window count and the line counts of (a uniform sample of) the windows."""
    flags: list[str] = []
    warnings: list[str] = []
    if n < SMALL_TRAINING_WINDOWS:
        flags.append("few_windows")
        warnings.append(f"only {n} training window{'s' * (n != 1)} (fewer than {SMALL_TRAINING_WINDOWS}): the tail "
                        "probabilities "
                        "behind the scores are coarse and the threshold rests on few windows")
    lines = sorted(line_counts)
    median = lines[len(lines) // 2] if lines else 0
    if lines and median <= SHORT_WINDOW_LINES:
        flags.append("short_windows")
        warnings.append(f"the median training window holds {median} line{'s' * (median != 1)}: windows this short "
                        "say little beyond which templates occur; use a coarser entity or longer windows")
    return flags, warnings


def check_training_windows(windows: Sequence[Window], settings: PipelineSettings, force: bool) -> list[str]:
    """Refuse too few training windows unless ``force``; return warnings about a poorly calibrated model."""
    return training_warnings(len(windows), len({(w.entity_field, w.entity_id) for w in windows}), settings, force)


def training_warnings(n: int, entities: int, settings: PipelineSettings, force: bool) -> list[str]:
    """:func:`check_training_windows` from the counts alone (streaming training keeps no window list)."""
    advice = ("use more input, a finer entity (--entity-regex / --entity-field) or shorter windows "
              "(--window tumbling --window-size, --session-gap)")
    if n < MIN_TRAINING_WINDOWS and not force:
        raise LogwardenError(
            f"only {n} training window{'s' * (n != 1)} ({entities} entit{'ies' if entities != 1 else 'y'}): "
            f"a model needs at least {MIN_TRAINING_WINDOWS} to learn what normal looks like; {advice}, "
            "or pass --force to fit it anyway")
    warnings = []
    if n < MIN_TRAINING_WINDOWS:
        warnings.append(f"fitted on only {n} window{'s' * (n != 1)} (--force): its scores say little")
    share = settings.contamination if isinstance(settings.contamination, float) else None
    expected = (share or 0.0) * n
    if share is not None and expected < MIN_EXPECTED_ANOMALIES:
        warnings.append(
            f"the threshold is poorly calibrated: {n} window{'s' * (n != 1)} x --contamination "
            f"{settings.contamination} = {expected:.1f} expected abnormal windows "
            f"(fewer than {MIN_EXPECTED_ANOMALIES}); {advice}")
    return warnings


def _finish_decode_stats(stats: JobStats, decoder: Decoder) -> None:
    decode_stats: DecodeStats = decoder.stats
    stats.decode = {k: int(v) for k, v in vars(decode_stats).items() if isinstance(v, int)}
    if stats.lines == 0:
        raise LogwardenError("the input is empty: no log lines to read")


def learn_windows(
    paths: Sequence[str], settings: PipelineSettings, progress: Progress | None = None,
    miner: TemplateMiner | None = None,
) -> tuple[TemplateMiner, list[Window], JobStats, PipelineSettings]:
    """Pass 1 of training: learn templates and window the records with final template ids.

    Returns the settings in force too: ``--log-format auto`` resolved to the preset it picked. ``miner``: start
    from it (a warm start, :meth:`TemplateMiner.warm_start`) instead of an empty one."""
    miner = miner if miner is not None else TemplateMiner.for_settings(settings.max_templates)
    stats = JobStats()
    windows: list[Window] = []

    def tag(message: str) -> TemplateMatch:
        handle = miner.learn_cluster(message)
        return TemplateMatch(template_id=str(handle), template="")

    source = Input(paths, settings, progress, stats)
    settings = source.settings
    chain = RecordChain(settings, tag)
    for batch in windowed(chain, source.lines(chain.decoder), stats, settings):
        windows.extend(batch)
    source.finish(stats)
    _finish_decode_stats(stats, chain.decoder)
    final: dict[str, TemplateMatch] = {}
    for window in windows:
        remapped: Counter[str] = Counter()
        samples: dict[str, str] = {}
        for handle, n in window.counts.items():
            match = final.get(handle)
            if match is None:
                # A preset-made template (access logs) has its final id already; a miner handle is a number.
                match = final[handle] = (miner.final_template(int(handle)) if handle.isdigit()
                                         else TemplateMatch(handle, window.templates[handle]))
            remapped[match.template_id] += n
            window.templates[match.template_id] = match.template
            if handle in window.samples:
                samples.setdefault(match.template_id, window.samples[handle])
        window.counts = remapped
        window.templates = {tid: window.templates[tid] for tid in remapped}
        window.samples = samples
    stats.templates = len({m.template_id for m in final.values()})
    if not windows:
        raise LogwardenError(
            f"no windows: none of {stats.lines} lines had an entity"
            + (f" matching --entity-regex {settings.entity_regex!r}" if settings.entity_regex else "")
        )
    return miner, windows, stats, settings


def fit_bundle(miner: TemplateMiner, windows: list[Window], settings: PipelineSettings, stats: JobStats,
               seed: int = 0) -> ModelBundle:
    """Fit the feature space and detector on training windows."""
    templates: dict[str, str] = {}
    for window in windows:
        templates.update(window.templates)
    return fit_counts(miner, [w.counts for w in windows], templates, settings, stats, seed)


def fit_counts(miner: TemplateMiner, counts: Sequence[Mapping[str, int]], templates: dict[str, str],
               settings: PipelineSettings, stats: JobStats, seed: int = 0) -> ModelBundle:
    """Fit the feature space and detector on window count vectors (template id -> count)."""
    space = FeatureSpace().fit(counts, templates)
    detector = WindowDetector(contamination=settings.contamination, target_fpr=settings.target_fpr, random_state=seed,
                              window_kind=settings.window)
    detector.fit(space.transform(counts))
    return ModelBundle(
        miner_state=miner.to_state(),
        features=space,
        detector=detector,
        settings=settings.to_dict(),
        stats=stats.as_dict(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def warm_miner(bundle: ModelBundle) -> TemplateMiner:
    """The template miner of a retraining that keeps ``bundle``'s template ids (``train --warm-start``)."""
    try:
        return TemplateMiner.warm_start(bundle.miner_state)
    except ValueError as exc:
        raise LogwardenError(f"cannot warm-start from model {bundle.version}: {exc}") from None


def train(paths: Sequence[str], settings: PipelineSettings, progress: Progress | None = None,
          force: bool = False, warm_start: ModelBundle | None = None) -> ModelBundle:
    """Learn a model from ``paths``; ``force`` fits one on fewer than :data:`MIN_TRAINING_WINDOWS` windows.

    Keeps every window in memory. ``logwarden train`` uses :func:`pipeline.training.train_stream` instead
    (bounded memory), which fits the same model when the input has at most its sample size of windows.
    ``warm_start``: the previous model, whose known templates keep their ids in the new one.
    """
    miner = warm_miner(warm_start) if warm_start is not None else None
    miner, windows, stats, settings = learn_windows(paths, settings, progress, miner)
    stats.warnings = check_training_windows(windows, settings, force)
    stats.flags, odd = training_flags(windows)
    stats.warnings.extend(odd)
    return fit_bundle(miner, windows, settings, stats)


def detect(
    paths: Sequence[str],
    settings: PipelineSettings,
    bundle: ModelBundle | None,
    progress: Progress | None = None,
    force: bool = False,
    lines: Iterator[RawLine] | None = None,
    every: bool = True,
) -> tuple[Iterator[dict[str, Any]], JobStats]:
    """Score every window of ``paths``. Returns a lazy iterator of documents and the stats it fills.

    Without ``bundle`` a model is trained on the input first (kept in memory, version ``adhoc``; ``force`` as
    for :func:`train`). ``lines`` replaces reading ``paths`` when a model is given (the throughput benchmark).
    ``every=False`` yields only the anomalous windows' documents (``logwarden detect`` without ``--all-windows``
    or ``--report``); the stats are the same.
    """
    if bundle is None:
        miner, windows, stats, settings = learn_windows(paths, settings, progress)
        stats.warnings = check_training_windows(windows, settings, force)
        stats.flags, odd = training_flags(windows)
        stats.warnings.extend(odd)
        bundle = fit_bundle(miner, windows, settings, stats)
        bundle.version = "adhoc"
        return _score_all(Scorer(bundle), windows, stats, every), stats
    stats = JobStats()
    return _detect_stream(paths, settings, bundle, stats, progress, lines, every), stats


def _score_all(scorer: Scorer, windows: list[Window], stats: JobStats, every: bool) -> Iterator[dict[str, Any]]:
    for i in range(0, len(windows), SCORE_BATCH):
        docs, anomalous, unseen = scorer.score_counted(windows[i:i + SCORE_BATCH], every)
        stats.anomalies += len(anomalous)
        stats.unseen_windows += unseen
        yield from docs


def _detect_stream(paths: Sequence[str], settings: PipelineSettings, bundle: ModelBundle, stats: JobStats,
                   progress: Progress | None, lines: Iterator[RawLine] | None = None,
                   every: bool = True) -> Iterator[dict[str, Any]]:
    try:
        miner = TemplateMiner.from_state(bundle.miner_state)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise LogwardenError(f"model {bundle.version}: miner.json is malformed ({exc}); retrain it") from None
    scorer = Scorer(bundle)
    unseen: set[str] = set()
    pending: list[Window] = []

    # the windower only reads a match: the memo's answer, uncopied, and the miner notes the unknown ones in ``unseen``
    miner.unseen_ids = unseen
    source = Input(paths, settings, progress, stats, lines=lines)
    settings = source.settings
    vocabulary = set(getattr(bundle.features, "vocabulary_", ()))
    chain = RecordChain(settings, miner.match_shared, known=vocabulary.__contains__)
    for batch in windowed(chain, source.lines(chain.decoder), stats, settings):
        pending.extend(batch)
        if len(pending) >= SCORE_BATCH:
            yield from _score_all(scorer, pending, stats, every)
            pending = []
    yield from _score_all(scorer, pending, stats, every)
    source.finish(stats)
    stats.unseen_templates = len(unseen)
    if stats.windows and stats.unseen_windows > UNSEEN_WINDOW_SHARE * stats.windows:
        stats.warnings.append(
            f"{stats.unseen_windows} of {stats.windows} windows hold templates the model never saw: the input "
            "differs from the training data (retrain on recent logs, or check --log-format)")
    _finish_decode_stats(stats, chain.decoder)


def evaluate(paths: Sequence[str], settings: PipelineSettings, bundle: ModelBundle, labels: dict[str, bool],
             progress: Progress | None = None) -> tuple[dict[str, Any], JobStats]:
    """Score ``paths`` with ``bundle`` and compare per entity with ``labels`` (:mod:`models.evaluation`)."""
    docs, stats = detect(paths, settings, bundle, progress)
    scores: dict[str, float] = {}
    flagged: dict[str, bool] = {}
    for doc in docs:
        entity = str(doc["entity"]["id"])
        scores[entity] = max(scores.get(entity, float("-inf")), float(doc["anomaly"]["score"]))
        flagged[entity] = flagged.get(entity, False) or bool(doc["anomaly"]["is_anomaly"])
    if not set(scores) & set(labels):
        raise LogwardenError(
            f"none of the {len(labels)} labelled entities appears in the {len(scores)} entities found in the input "
            "(check that --labels names entities the way --entity-regex / --entity-field find them)")
    return entity_metrics(labels, scores, flagged, float(bundle.detector.threshold_)), stats


def parse(
    paths: Sequence[str], settings: PipelineSettings, progress: Progress | None = None
) -> tuple[Iterator[tuple[int, str, str]], JobStats]:
    """Template every line: returns ``(line number from 1, template id, template)`` rows in input order.

    Ids and texts are the final ones after all lines were learned, so the same template has the same
    id on every row. Memory: one small int per line.
    """
    miner = TemplateMiner.for_settings(settings.max_templates)
    stats = JobStats()
    handles: list[int | TemplateMatch] = []
    # Only the chain's decoding step: parse templates every line, entities and windows play no part.
    source = Input(paths, settings, progress, stats)
    decoder = RecordChain(source.settings, miner.learn).decoder
    for raw in source.lines(decoder):
        stats.lines += 1
        record = decoder.decode(raw)
        fixed = record.fields.get(TEMPLATE_FIELD)  # a preset-made template (access logs)
        handles.append(TemplateMatch(template_id(fixed), fixed) if fixed else miner.learn_cluster(record.message))
    source.finish(stats)
    _finish_decode_stats(stats, decoder)

    def rows() -> Iterator[tuple[int, str, str]]:
        final: dict[int, TemplateMatch] = {}
        fixed: set[str] = set()
        for number, handle in enumerate(handles, start=1):
            if isinstance(handle, TemplateMatch):
                fixed.add(handle.template_id)
                yield number, handle.template_id, handle.template
                continue
            match = final.get(handle)
            if match is None:
                match = final[handle] = miner.final_template(handle)
            yield number, match.template_id, match.template
        stats.templates = len({m.template_id for m in final.values()} | fixed)

    return rows(), stats
