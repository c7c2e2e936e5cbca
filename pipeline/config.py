"""Pipeline settings: one dataclass shared by ``train``, ``detect``, ``parse`` and the worker.

Precedence, lowest first: built-in defaults < settings stored in the model < the YAML ``--config``
file < command-line flags. Keys in the YAML file are the long flag names with dashes or underscores
(``entity-regex`` or ``entity_regex``). Durations accept ``500ms``, ``30s``, ``5m``, ``2h``, ``1d`` or
plain seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import LogwardenError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
WINDOW_KINDS = ("session", "tumbling")


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


@dataclass(frozen=True)
class PipelineSettings:
    """Decoding, entity, window and model settings. Durations are seconds."""

    log_format: str | None = None
    time_format: str | None = None
    entity_regex: str | None = None
    entity_field: str | None = None
    window: str = "session"
    session_gap: float = 300.0
    max_session: float = 3600.0
    window_size: float = 60.0
    allowed_lateness: float = 60.0
    max_line_bytes: int = 65536
    contamination: float = 0.03

    def merged(self, overrides: Mapping[str, Any] | None) -> PipelineSettings:
        """A copy with every known, non-None key of ``overrides`` applied (durations parsed)."""
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        changes: dict[str, Any] = {}
        for raw_key, value in overrides.items():
            key = raw_key.replace("-", "_")
            if key not in known or value is None:
                continue
            if key in ("session_gap", "max_session", "window_size", "allowed_lateness"):
                value = parse_duration(value, "--" + key.replace("_", "-"))
            changes[key] = value
        return replace(self, **changes).validated()

    def validated(self) -> PipelineSettings:
        if self.window not in WINDOW_KINDS:
            raise LogwardenError(f"--window must be one of {', '.join(WINDOW_KINDS)}, got {self.window!r}")
        if not 0.0 < float(self.contamination) < 0.5:
            raise LogwardenError(f"--contamination must be between 0 and 0.5, got {self.contamination}")
        if int(self.max_line_bytes) < 256:
            raise LogwardenError("--max-line-bytes must be at least 256")
        if self.entity_regex is not None:
            try:
                re.compile(self.entity_regex)
            except re.error as exc:
                raise LogwardenError(f"--entity-regex {self.entity_regex!r} is not a valid regex: {exc}") from None
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
