"""Presets: the log shapes SREs hold most, named, so nobody has to describe them by hand.

A preset sets the layout (a logparser ``--log-format`` or one of the parsers of :mod:`pipeline.stages.formats`),
the time format, a default entity and window, and for container logs how split lines are put back together
(:mod:`pipeline.stages.assembly`). Explicit options override it: ``--log-format`` replaces its layout and time
format, ``--entity-regex``/``--entity-field`` its entity, ``--window`` its window (:func:`apply`).

``--log-format auto`` (:func:`pick`) decodes the first lines with every preset and takes the one that reads the
most of them (a layout match *and* a readable timestamp), the more specific preset on a tie; the CLI says which.

Sources of the formats: the Kubernetes CRI logging format (kubernetes/design-proposals ``kubelet-cri-logging.md``:
``TIMESTAMP STREAM TAG CONTENT``, RFC 3339 nano time, tag ``P`` partial / ``F`` full), ``kubectl logs
--timestamps`` (RFC 3339 nano time and a space before each line), Docker's json-file driver
(``{"log": ..., "stream": ..., "time": ...}``, docs.docker.com/engine/logging/drivers/json-file/), RFC 3164
section 4.1 and RFC 5424 section 6 syslog, nginx's ``log_format combined`` (nginx.org ngx_http_log_module) and
Apache's ``combined`` LogFormat, logfmt (brandur.org/logfmt), and Loghub's sixteen layouts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.errors import LogwardenError
from pipeline.stages.formats import AccessLog, Cri, Logfmt, Syslog5424
from pipeline.stages.layouts import LogFormat
from pipeline.stages.loghub_layouts import LOGHUB_LAYOUTS

AUTO = "auto"
PICK_MIN_SHARE = 0.5


class Layout(Protocol):
    """What the decoder needs of a layout: :class:`LogFormat` or a parser of :mod:`pipeline.stages.formats`."""

    fmt: str
    names: tuple[str, ...]

    def match(self, line: str) -> tuple[str, dict[str, str]] | None: ...


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    example: str
    log_format: str | None = None  # a logparser layout...
    parser: type | None = None  # ...or a parser class (formats.py); neither: JSON or plain text
    settings: Mapping[str, Any] = field(default_factory=dict)  # time format, entity, window
    assembly: str | None = None  # how split lines are joined back: "cri" or "docker"
    json_keys: tuple[str, ...] = ()  # for auto: a JSON preset fits objects that have all these keys

    def layout(self) -> Layout | None:
        if self.parser is not None:
            return self.parser()  # type: ignore[no-any-return]
        return LogFormat(self.log_format) if self.log_format else None


_STREAM = {"window": "tumbling", "window_size": 60.0}  # one container's output: the whole stream per minute
_RFC3164 = r"(\<<PRI>\>)?<Month> <Day> <Time> <host.name> <process.name>(\[<process.pid>\])?: <Content>"

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("cri", "Kubernetes container log (CRI, /var/log/pods)",
           "2026-11-30T10:00:00.123456789Z stdout F GET /healthz 200",
           parser=Cri, settings=_STREAM, assembly="cri"),
    Preset("docker", "Docker json-file (/var/lib/docker/containers/*/*-json.log)",
           '{"log":"GET /healthz 200\\n","stream":"stdout","time":"2026-11-30T10:00:00.123456789Z"}',
           settings=_STREAM, assembly="docker", json_keys=("log", "stream", "time")),
    Preset("kubectl", "kubectl logs --timestamps",
           "2026-11-30T10:00:00.123456789Z GET /healthz 200", log_format="<Timestamp> <Content>", settings=_STREAM),
    Preset("rfc5424", "syslog, RFC 5424",
           "<165>1 2026-11-30T10:00:00.003Z web1 nginx 4242 ID47 - upstream timed out",
           parser=Syslog5424, settings={"entity_field": "host.name", "window": "tumbling"}),
    Preset("rfc3164", "syslog, RFC 3164 (BSD; /var/log/syslog, /var/log/messages)",
           "<34>Nov 30 10:00:00 web1 sshd[4242]: Accepted publickey for deploy",
           log_format=_RFC3164, settings={"entity_field": "host.name", "window": "tumbling"}),
    Preset("nginx", "nginx access log (log_format combined)",
           '203.0.113.7 - - [30/Nov/2026:10:00:00 +0000] "GET /api/users/42 HTTP/1.1" 200 512 "-" "curl/8.5"',
           parser=AccessLog, settings={"time_format": "%d/%b/%Y:%H:%M:%S %z", "entity_field": "client.ip"}),
    Preset("apache", "Apache access log (LogFormat combined or common)",
           '203.0.113.7 - frank [30/Nov/2026:10:00:00 +0000] "POST /login HTTP/1.1" 302 0 "-" "Mozilla/5.0"',
           parser=AccessLog, settings={"time_format": "%d/%b/%Y:%H:%M:%S %z", "entity_field": "client.ip"}),
    Preset("logfmt", "logfmt (key=value pairs: Go slog/logrus, Heroku)",
           'time=2026-11-30T10:00:00Z level=error msg="payment failed" order=42', parser=Logfmt, settings=_STREAM),
)}

# Loghub's layouts, with the entity each system's logs are usually read by.
_LOGHUB_ENTITY: dict[str, dict[str, Any]] = {
    "HDFS": {"entity_regex": r"blk_-?\d+"},
    "BGL": {"entity_field": "Node", "window": "tumbling"},
    "Thunderbird": {"entity_field": "Location", "window": "tumbling"},
    "HPC": {"entity_field": "Node", "window": "tumbling"},
    "Zookeeper": {"entity_field": "Node", "window": "tumbling"},
}
for _system, _layout in LOGHUB_LAYOUTS.items():
    _name = f"loghub-{_system.lower()}"
    PRESETS[_name] = Preset(_name, f"Loghub {_system} layout", "", log_format=_layout,
                            settings=_LOGHUB_ENTITY.get(_system, {"entity_field": "Component", "window": "tumbling"}))

ENTITY_KEYS = ("entity_regex", "entity_field")
WINDOW_KEYS = ("window", "window_size", "session_gap", "max_session")


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise LogwardenError(f"--preset: unknown preset {name!r}{hint}; `logwarden presets` lists them") from None


def apply(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The settings preset ``name`` contributes under the ``given`` options (flags and config file).

    A group of options the user gave replaces the preset's whole group: a ``--log-format`` drops the preset's
    layout and time format, an ``--entity-regex`` its entity field, a ``--window`` its window size.
    """
    preset = get(name)
    values: dict[str, Any] = {"preset": name, "log_format": preset.log_format, **preset.settings}
    if given.get("log_format") not in (None, AUTO):
        values.pop("time_format", None)
    for group in (ENTITY_KEYS, WINDOW_KEYS):
        if any(given.get(key) is not None for key in group):
            for key in group:
                values.pop(key, None)
    return values


def layout_of(preset: str | None, log_format: str | None) -> Layout | None:
    """The layout the decoder uses: ``--log-format`` when given, else the preset's."""
    if log_format is not None and log_format != AUTO:
        return LogFormat(log_format)
    return get(preset).layout() if preset else None


@dataclass(frozen=True)
class Pick:
    name: str
    fitting: int
    lines: int


def pick(lines: Iterable[str], decode: Any) -> Pick:
    """The preset that reads most of ``lines`` (``decode(preset, text) -> bool``, see the module docstring).

    Raises LogwardenError when none reads at least half of the non-empty lines.
    """
    sample = [line for line in lines if line.strip()]
    if not sample:
        raise LogwardenError("--log-format auto: the input has no lines to recognise a format from")
    best: Pick | None = None
    for preset in PRESETS.values():
        fitting = sum(1 for text in sample if decode(preset, text))
        if fitting and (best is None or fitting > best.fitting):
            best = Pick(preset.name, fitting, len(sample))
    if best is None or best.fitting < PICK_MIN_SHARE * len(sample):
        first = sample[0] if len(sample[0]) <= 200 else sample[0][:200] + "..."
        share = f" (the closest, {best.name}, read {best.fitting} of {len(sample)} lines)" if best else ""
        raise LogwardenError(f"--log-format auto: no preset reads the first lines{share}; give --log-format or "
                             f"--preset; first line was: {first}")
    return best


def describe() -> list[tuple[str, str, str]]:
    """``(name, title, example line)`` of every preset, for ``logwarden presets``."""
    return [(p.name, p.title, p.example or (p.log_format or "")) for p in PRESETS.values()]
