"""Line parsers for well-known formats that a logparser layout cannot describe exactly.

Each parser has the interface the decoder uses for a layout (:class:`pipeline.stages.layouts.LogFormat`):
``fmt`` (a name, for messages), ``names`` (the fields it can return, time fields named so the decoder finds
them) and ``match(line) -> (message, fields) | None``. A line that does not fit is ``None`` and the decoder
keeps it whole, flagged ``unmatched``: nothing is dropped. Every regex here is linear (alternatives start
with different characters), so a hostile 64 KiB line cannot stall a partition.

* :class:`Syslog5424`: RFC 5424 section 6 (``<PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
  STRUCTURED-DATA [MSG]``); structured data may hold spaces and quoted ``]``, which a layout cannot split.
* :class:`AccessLog`: the NCSA combined format, nginx's predefined ``log_format combined`` and Apache's
  ``LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-agent}i\\"" combined`` (the common format,
  without referrer and agent, fits too). Its message is the request's *shape*, see :func:`access_template`.
* :class:`Logfmt`: ``key=value`` pairs (Heroku, Go's slog/logrus text handlers), values optionally quoted.
"""

from __future__ import annotations

import re

TEMPLATE_FIELD = "log.template"
"""A field whose value is the record's template text, set by parsers that know it (access logs)."""

_5424 = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) (?P<Timestamp>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) "
    r"(?P<msgid>\S+) (?P<sd>-|(?:\[(?:[^\]\\\"]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+)(?: (?P<msg>.*))?",
    re.DOTALL)


def _nil(value: str | None) -> str | None:
    return None if value in (None, "-") else value


class Syslog5424:
    fmt = "RFC 5424 syslog"
    names = ("Timestamp", "Content")

    def match(self, line: str) -> tuple[str, dict[str, str]] | None:
        found = _5424.fullmatch(line.strip())
        if found is None:
            return None
        pri = int(found["pri"])
        if pri > 191:
            return None
        fields = {"log.syslog.priority": str(pri), "log.syslog.facility.code": str(pri // 8),
                  "log.syslog.severity.code": str(pri % 8)}
        for key, name in (("host", "host.name"), ("app", "process.name"), ("procid", "process.pid"),
                          ("msgid", "event.code"), ("sd", "log.syslog.structured_data"),
                          ("Timestamp", "Timestamp")):
            value = _nil(found[key])
            if value is not None:
                fields[name] = value
        message = (found["msg"] or "").removeprefix("\ufeff")  # RFC 5424 6.4: a UTF-8 MSG may start with a BOM
        return message, fields


_CRI = re.compile(r"(?P<Timestamp>\S+) (?P<stream>stdout|stderr) (?P<logtag>[PF](?::\S*)?)(?: (?P<msg>.*))?",
                  re.DOTALL)


class Cri:
    """``TIMESTAMP STREAM TAG CONTENT`` (Kubernetes CRI logging); ``P`` pieces are joined by ``assembly``."""

    fmt = "Kubernetes CRI log"
    names = ("Timestamp", "Content")

    def match(self, line: str) -> tuple[str, dict[str, str]] | None:
        found = _CRI.fullmatch(line.strip("\r\n"))
        if found is None:
            return None
        return found["msg"] or "", {"Timestamp": found["Timestamp"], "log.iostream": found["stream"],
                                     "log.tag": found["logtag"]}


_QUOTED = r"\"(?P<{0}>(?:[^\"\\]|\\.)*)\""
_ACCESS = re.compile(
    r"(?P<client>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<Time>[^\]]*)\] " + _QUOTED.format("request")
    + r" (?P<status>\d{3}) (?P<bytes>\d+|-)(?: " + _QUOTED.format("referrer") + " " + _QUOTED.format("agent")
    + r")?(?P<rest> .*)?", re.DOTALL)
_REQUEST = re.compile(r"(?P<method>[A-Z][A-Z_-]{0,19}) (?P<target>\S+)(?: (?P<protocol>HTTP/\d(?:\.\d)?))?")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEXID = re.compile(r"(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}")
_NUMBERISH = re.compile(r"[-+]?\d[\d.,:_-]*")
_TOKEN = re.compile(r"(?=.*\d)[A-Za-z0-9_-]{20,}")  # long opaque tokens with a digit: session ids, base64
_MASK = "<*>"
MAX_PATH_SEGMENTS = 12


def normalise_path(target: str) -> str:
    """``/api/users/42/orders?id=7`` -> ``/api/users/<*>/orders``: the endpoint, ids masked.

    The query string and fragment are cut (their values vary per request); a segment that is a number, a
    UUID, a hex id of 8 or more digits, or a long opaque token with a digit is ``<*>``; at most
    :data:`MAX_PATH_SEGMENTS` segments are kept so a crawler's endless paths make one template, not many.
    """
    path = target.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:  # an absolute-form target (a proxy request): keep only the path
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    segments = path.split("/")
    out = []
    for segment in segments[: MAX_PATH_SEGMENTS + 1]:
        if (_NUMBERISH.fullmatch(segment) or _UUID.fullmatch(segment) or _HEXID.fullmatch(segment)
                or _TOKEN.fullmatch(segment)):
            out.append(_MASK)
        else:
            out.append(segment)
    if len(segments) > MAX_PATH_SEGMENTS + 1:
        out.append(_MASK)
    return "/".join(out) or "/"


def status_class(status: str) -> str:
    return f"{status[0]}xx" if status[:1] in "12345" else status


def access_template(method: str | None, target: str, status: str) -> str:
    """The template of one request: method, normalised path and status class (``GET /api/users/<*> 5xx``).

    So a burst of 5xx on one endpoint is a burst of one template, which the window's counts show like any
    other. A request line that is not ``METHOD TARGET [HTTP/x]`` (a TLS handshake sent to a plain port,
    ``-``) has the template ``<malformed> <status class>``.
    """
    if method is None:
        return f"<malformed> {status_class(status)}"
    return f"{method} {normalise_path(target)} {status_class(status)}"


class AccessLog:
    fmt = "combined access log"
    names = ("Time", "Content")

    def match(self, line: str) -> tuple[str, dict[str, str]] | None:
        found = _ACCESS.fullmatch(line.strip())
        if found is None:
            return None
        request = found["request"]
        fields = {"client.ip": found["client"], "Time": found["Time"], "http.response.status_code": found["status"],
                  "http.response.body.bytes": found["bytes"]}
        if _nil(found["user"]) is not None:
            fields["user.name"] = found["user"]
        for key, name in (("referrer", "http.request.referrer"), ("agent", "user_agent.original")):
            if _nil(found[key]) is not None:
                fields[name] = found[key]
        parsed = _REQUEST.fullmatch(request)
        method = parsed["method"] if parsed else None
        if parsed:
            fields["http.request.method"] = method or ""
            fields["url.original"] = parsed["target"]
            fields["url.path"] = normalise_path(parsed["target"])
        fields[TEMPLATE_FIELD] = access_template(method, parsed["target"] if parsed else "", found["status"])
        return f"{request} {found['status']}", fields


_PAIR = re.compile(r"(?P<key>[^\s=\"]+)(?:=(?:\"(?P<quoted>(?:[^\"\\]|\\.)*)\"|(?P<bare>[^\s\"]*)))?(?:\s+|$)")
_ESCAPE = re.compile(r"\\(.)")
MESSAGE_KEYS = ("msg", "message")
TIME_KEYS = ("time", "ts", "timestamp", "t")
LEVEL_KEYS = ("level", "lvl", "severity")


class Logfmt:
    fmt = "logfmt"
    names = ("Timestamp", "Content")

    def match(self, line: str) -> tuple[str, dict[str, str]] | None:
        text = line.strip()
        pairs: dict[str, str] = {}
        pos = 0
        while pos < len(text):
            found = _PAIR.match(text, pos)
            if found is None or found.end() == pos:
                return None
            pos = found.end()
            value = found["quoted"]
            if value is not None:
                value = _ESCAPE.sub(r"\1", value)
            else:
                value = found["bare"] if found["bare"] is not None else ""
            if found["bare"] is None and found["quoted"] is None and "=" not in found.group(0):
                return None  # a bare word: prose, not logfmt
            pairs.setdefault(found["key"], value)
        if len(pairs) < 2:
            return None
        message = next((pairs.pop(k) for k in MESSAGE_KEYS if k in pairs), None)
        fields: dict[str, str] = {}
        stamp = next((pairs.pop(k) for k in TIME_KEYS if k in pairs), None)
        if stamp:
            fields["Timestamp"] = stamp
        level = next((pairs.pop(k) for k in LEVEL_KEYS if k in pairs), None)
        if level is not None:
            fields["log.level"] = level
        fields.update(pairs)
        if message is None:  # no msg key: the remaining pairs, keys kept and values left to the masking
            message = " ".join(f"{k}={v}" for k, v in pairs.items())
        return message, fields
