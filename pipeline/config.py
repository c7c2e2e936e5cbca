"""Settings, worker options and the one rule that resolves them: flag > ``--config`` file > model > default.

Every default is written once, here: :class:`PipelineSettings` (decoding, entities, windows, model) and
:class:`WorkerOptions` (Kafka, the Elasticsearch or OpenSearch sink, loop timing) hold them as dataclass
defaults, and the CLI's help texts read them from there (:func:`default_text`), so a help line can never
disagree with the code.

Precedence, highest first:

1. a flag on the command line, or its environment variable (``LOGWARDEN_ES_URL``...);
2. the YAML ``--config`` file: keys are the long option names with dashes or underscores
   (``entity-regex`` or ``entity_regex``; ``topic`` for ``--topic``). An unknown key is an error naming the
   closest valid one (:func:`config_values`), so a typo never silently runs with the defaults;
3. the settings stored in the model (``detect``, ``worker``: decoding, entity and window options);
4. the defaults below.

Durations accept ``500ms``, ``30s``, ``5m``, ``2h``, ``1d`` or plain seconds (:data:`DURATION` is the click
type, :func:`parse_duration` the function behind it).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import yaml

from pipeline.errors import LogwardenError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
WINDOW_KINDS = ("session", "tumbling")
INPUT_FORMATS = ("auto", "json", "text")
DURATION_SETTINGS = ("session_gap", "max_session", "window_size", "allowed_lateness", "max_clock_skew",
                     "multiline_timeout")

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_ES_URL = "http://127.0.0.1:9200"
DEFAULT_INDEX_PREFIX = "logwarden"
DEFAULT_KIBANA_URL = "http://127.0.0.1:5601"
# Where anomaly documents go: the search cluster's product. Both take the same --es-* connection flags.
SINKS = ("elasticsearch", "opensearch")
DEFAULT_SINK = "elasticsearch"
# A bulk request may take --es-timeout twice (the transport retries a timeout once) plus its backoff, all between
# two polls: the poll interval must leave room for that.
MAX_POLL_INTERVAL_PER_ES_TIMEOUT = 3


def parse_duration(text: str | float | int, name: str = "duration") -> float:
    """Seconds from ``'5m'``-style text; raises LogwardenError naming ``name`` when malformed."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise LogwardenError(f"{name}: {text!r} is not a duration (examples: 500ms, 30s, 5m, 2h)")
        value = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if value <= 0:
        raise LogwardenError(f"{name} must be positive, got {text!r}")
    return value


def parse_time_bound(text: str, name: str, now: float | None = None) -> float:
    """Epoch seconds of ``--since``/``--until``: ISO 8601 (no zone = UTC), ``now``, or a duration ago (``7d``)."""
    import time  # noqa: PLC0415 - only the time-range commands need it
    from datetime import datetime  # noqa: PLC0415

    now = time.time() if now is None else now
    value = str(text).strip()
    if value.lower() == "now":
        return now
    if _DURATION.match(value):
        return now - parse_duration(value, name)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise LogwardenError(f"{name}: {text!r} is neither an ISO 8601 time (2026-11-30T00:00:00Z) nor a duration "
                             "ago (7d, 12h, 30m) nor 'now'") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_duration(seconds: float) -> str:
    """``300.0 -> '5m'``: the shortest exact spelling, for help texts."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"


class Duration(click.ParamType):
    """A click parameter type for durations: ``--session-gap 5m`` arrives as ``300.0``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        match = _DURATION.match(str(value))
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else 0.0
        if not match or seconds <= 0:
            self.fail(f"{value!r} is not a positive duration (examples: 500ms, 30s, 5m, 2h)", param, ctx)
        return seconds


DURATION = Duration()


@dataclass(frozen=True)
class PipelineSettings:
    """Decoding, entity, window and model settings, stored with every model. Durations are seconds."""

    log_format: str | None = None  # a layout, or "auto": pick a preset from the first lines
    time_format: str | None = None
    preset: str | None = None  # a name of pipeline.stages.presets; its values are merged in by the CLI
    entity_regex: str | None = None
    entity_field: str | None = None
    window: str = "session"
    session_gap: float = 300.0
    max_session: float = 3600.0
    window_size: float = 60.0
    allowed_lateness: float = 60.0
    max_clock_skew: float = 86400.0
    max_line_bytes: int = 65536
    # Template-state bound while learning (MinerConfig.max_clusters): beyond it new lines go to one "other" template.
    max_templates: int = 50_000
    # "auto" (estimated from the training windows), "clean" (training is normal: cut at target_fpr) or the
    # expected abnormal share of the training windows, a number in (0, 0.5). Plain data: models/ interprets it.
    contamination: float | str = "auto"
    target_fpr: float = 0.01
    # Timestamps without a zone are read in ``timezone`` (an IANA name); ``year`` fills timestamps without a
    # year (syslog's ``Jun 14 15:16:01``), None = the current year (the previous one for dates ahead of now).
    timezone: str = "UTC"
    year: int | None = None
    # Window lines most of which carry no readable timestamp (``train``/``detect`` refuse them otherwise).
    allow_untimed: bool = False
    # Multi-line records (pipeline.stages.multiline): continuation lines joined to the record before them.
    multiline: bool = True
    multiline_start: str | None = None  # a regex: lines that match start a record, all others continue one
    multiline_max_lines: int = 500
    # Worker: a record whose key sent nothing for this long (processing time) is complete. Short, because a
    # held record holds back the records after it in its partition; a shipper sends a trace's lines together.
    multiline_timeout: float = 0.25

    def merged(self, overrides: Mapping[str, Any] | None) -> PipelineSettings:
        """A copy with every known, non-None key of ``overrides`` applied (durations parsed).

        Keys that are not settings are ignored: ``overrides`` is often a command's whole option set.
        """
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        changes: dict[str, Any] = {}
        for raw_key, value in overrides.items():
            key = raw_key.replace("-", "_")
            if key not in known or value is None:
                continue
            if key in DURATION_SETTINGS:
                value = parse_duration(value, "--" + key.replace("_", "-"))
            changes[key] = value
        return replace(self, **changes).validated()

    def validated(self) -> PipelineSettings:
        if self.window not in WINDOW_KINDS:
            raise LogwardenError(f"--window must be one of {', '.join(WINDOW_KINDS)}, got {self.window!r}")
        object.__setattr__(self, "contamination", parse_contamination(self.contamination))
        if not 0.0 < float(self.target_fpr) < 1.0:
            raise LogwardenError(f"--target-fpr must be between 0 and 1, got {self.target_fpr}")
        if int(self.max_line_bytes) < 256:
            raise LogwardenError("--max-line-bytes must be at least 256")
        zone(self.timezone)  # an unknown zone is an error here, before any input is read
        if int(self.max_templates) < 1:
            raise LogwardenError(f"--max-templates must be at least 1, got {self.max_templates}")
        if int(self.multiline_max_lines) < 1:
            raise LogwardenError(f"--multiline-max-lines must be at least 1, got {self.multiline_max_lines}")
        if self.multiline_start is not None:
            try:
                re.compile(self.multiline_start)
            except re.error as exc:
                raise LogwardenError(
                    f"--multiline-start {self.multiline_start!r} is not a valid regex: {exc}") from None
        if self.year is not None and not 1 <= int(self.year) <= 9999:
            raise LogwardenError(f"--year must be between 1 and 9999, got {self.year}")
        if self.entity_regex is not None:
            try:
                re.compile(self.entity_regex)
            except re.error as exc:
                raise LogwardenError(f"--entity-regex {self.entity_regex!r} is not a valid regex: {exc}") from None
        return self

    @property
    def zone_info(self) -> tzinfo:
        """The zone of ``timezone``; an unknown name is a one-line LogwardenError."""
        return zone(self.timezone)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CONTAMINATION_MODES = ("auto", "clean")


def parse_contamination(value: object) -> float | str:
    """``auto``, ``clean`` or a share in (0, 0.5) (a number or its text); LogwardenError otherwise."""
    if isinstance(value, str) and value.strip().lower() in CONTAMINATION_MODES:
        return value.strip().lower()
    try:
        share = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise LogwardenError(f"--contamination must be auto, clean or a number between 0 and 0.5, got {value!r}"
                             ) from None
    if not 0.0 < share < 0.5:
        raise LogwardenError(f"--contamination must be between 0 and 0.5, got {value}")
    return share


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``UTC``, ``Europe/Berlin``); LogwardenError when unknown."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise LogwardenError(
            f"--timezone: unknown time zone {name!r} (use an IANA name such as UTC, Europe/Berlin or "
            "America/New_York)") from None


@dataclass
class WorkerOptions:
    """Resolved worker options (decoding, entity and window settings are in ``settings``)."""

    topics: tuple[str, ...] = ()
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    group_id: str = "logwarden"
    sink: str = DEFAULT_SINK
    es_url: str = DEFAULT_ES_URL
    index_prefix: str = DEFAULT_INDEX_PREFIX
    metrics_port: int | None = None
    exit_when_idle: float | None = None
    dlq_topic: str | None = None
    input_format: str = "auto"
    commit_interval: float = 5.0
    idle_close: float | None = None  # None: the window's own timeout (gap or size) plus the allowed lateness
    liveness_timeout: float = 60.0
    session_timeout: float = 10.0
    es_timeout: float = 10.0
    # kafka-python leaves the group when the loop has not polled for this long; every step between two polls
    # (a bulk request with its one retry, a checkpoint) is bounded by es_timeout, which check() keeps below it.
    max_poll_interval: float = 300.0
    es_compat: str = "auto"
    es_insecure_skip_verify: bool = False  # --es-insecure-skip-verify: no certificate checks (a loud warning)
    es_setup: bool = True
    template_catalog_interval: float = 30.0  # 0: do not write the <prefix>-templates catalog
    # Records per poll: big enough that per-poll work (idle checks, metrics, a model call) is shared by many.
    max_poll_records: int = 2000
    # Closed windows are scored in batches (one model call has a fixed cost): at this many, or after this long.
    score_batch: int = 1000
    score_delay: float = 0.2
    # Scored anomalies are indexed this often between checkpoints (searchable sooner than commit_interval).
    flush_interval: float = 0.5
    client_id: str = "logwarden-worker"
    es_auth: dict[str, str] = field(default_factory=dict)
    # Hot reload: the registry is polled this often for a new current version (not with --model-version).
    model_dir: str | None = None
    model_version: str | None = None
    model_poll_interval: float = 10.0
    # Pipeline settings given explicitly (flag or config file): they win over any model's, old or new.
    explicit_settings: frozenset[str] = frozenset()

    @classmethod
    def from_values(cls, values: Mapping[str, Any], settings: PipelineSettings,
                    es_auth: Mapping[str, str] | None = None) -> WorkerOptions:
        """Options from resolved values (None: the default); durations may still be text."""
        known = {f.name for f in fields(cls)} - {"settings", "es_auth", "explicit_settings"}
        chosen: dict[str, Any] = {k: v for k, v in values.items() if k in known and v is not None}
        for name in ("exit_when_idle", "commit_interval", "idle_close", "liveness_timeout", "session_timeout",
                     "es_timeout", "max_poll_interval", "model_poll_interval", "template_catalog_interval"):
            if name in chosen:
                chosen[name] = parse_duration(chosen[name], "--" + name.replace("_", "-"))
        topics = chosen.get("topics", ())
        chosen["topics"] = (topics,) if isinstance(topics, str) else tuple(topics)
        explicit = frozenset(f.name for f in fields(PipelineSettings) if values.get(f.name) is not None)
        return cls(settings=settings, es_auth=dict(es_auth or {}), explicit_settings=explicit, **chosen).check()

    @property
    def idle_timeout(self) -> float:
        """Processing time after which an entity's quiet window is closed (see ``--idle-close``)."""
        if self.idle_close is not None:
            return self.idle_close
        s = self.settings
        return (s.session_gap if s.window == "session" else s.window_size) + s.allowed_lateness

    def check(self) -> WorkerOptions:
        if not self.topics:
            raise LogwardenError("no topic to consume: give --topic (repeatable) or `topic:` in the config file")
        if not self.group_id:
            raise LogwardenError("--group-id must not be empty")
        if self.sink not in SINKS:
            raise LogwardenError(f"--sink must be one of {', '.join(SINKS)}, got {self.sink!r}")
        if self.input_format not in INPUT_FORMATS:
            raise LogwardenError(f"--format must be one of {', '.join(INPUT_FORMATS)}, got {self.input_format!r}")
        if self.session_timeout < 6:
            raise LogwardenError("--session-timeout must be at least 6s (the broker's minimum)")
        if self.max_poll_interval < MAX_POLL_INTERVAL_PER_ES_TIMEOUT * self.es_timeout:
            raise LogwardenError(
                f"--max-poll-interval ({format_duration(self.max_poll_interval)}) must be at least "
                f"{MAX_POLL_INTERVAL_PER_ES_TIMEOUT} times --es-timeout ({format_duration(self.es_timeout)}): a "
                "bulk request and its one retry run between two polls, and a member that polls later is "
                "dropped from the group")
        return self


def default_of(owner: type, name: str) -> Any:
    """The dataclass default of ``owner.name`` (the one place defaults are written)."""
    for f in fields(owner):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
    raise KeyError(name)


def default_text(owner: type, name: str) -> str:
    """``'  [default: 5m]'`` for help texts, read from the dataclass (durations spelled as durations)."""
    value = default_of(owner, name)
    if value is None:
        return ""
    if isinstance(value, float) and (name in DURATION_SETTINGS or owner is WorkerOptions):
        value = format_duration(value)
    return f"  [default: {value}]"


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a flat dict with underscore keys."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LogwardenError(f"config file not found: {path}") from None
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LogwardenError(f"cannot read config file {path}: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LogwardenError(f"config file {path} must hold a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def config_values(config: Mapping[str, Any], names: Mapping[str, str], path: str | Path) -> dict[str, Any]:
    """``config`` keyed by option names; ``names`` maps every accepted key to its option name.

    An unknown key is an error naming the key and the closest accepted one.
    """
    values: dict[str, Any] = {}
    for key, value in config.items():
        name = names.get(key)
        if name is None:
            raise LogwardenError(f"config file {path}: unknown option {key!r}{_closest(key, names)}")
        values[name] = value
    return values


def _closest(key: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def layered(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge option layers given lowest first; a None value never hides a lower layer's value."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is not None:
                merged[key] = value
    return merged
