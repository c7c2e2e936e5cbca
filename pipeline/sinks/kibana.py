"""Kibana saved objects (``kibana/logwarden.ndjson``) and their import through Kibana's saved objects API.

The NDJSON holds a data view over the anomaly alias, one over the template catalog ``<prefix>-templates`` (look up
a ``templates.id`` of an anomaly: ``template_id: T...``), a saved search, Lens panels, a dashboard and an
"Elasticsearch query" alert rule, all with ids that start with ``logwarden-``. Kibana's ``_import`` with
``overwrite=true`` replaces only objects whose type and id are in the file, so a re-import updates our objects
and never touches anyone else's.

The shipped file is written for the default index prefix (``logwarden``); :func:`for_prefix` rewrites the data
view titles and the rule's index for another prefix (ids stay, so one Kibana space holds one Logwarden
layout), and sets the rule's minimum score. Importing is one multipart ``POST`` (stdlib HTTP: no client to
install); authentication is an API key or user/password, read from the environment by the command.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import DEFAULT_INDEX_PREFIX
from pipeline.errors import LogwardenError

OBJECT_PREFIX = "logwarden-"
TEMPLATES_VIEW = "logwarden-templates"  # data view over the template catalog; every other one is the anomalies
DEFAULT_OBJECTS = Path(__file__).resolve().parents[2] / "kibana" / "logwarden.ndjson"
INSTALLED_OBJECTS = Path("/usr/share/logwarden/kibana/logwarden.ndjson")  # where the Docker image puts it
_SPACE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


def default_objects_file() -> Path:
    """The NDJSON of a source checkout, else of the Docker image; a LogwardenError when neither exists."""
    for path in (DEFAULT_OBJECTS, INSTALLED_OBJECTS):
        if path.is_file():
            return path
    raise LogwardenError(f"no saved objects file at {DEFAULT_OBJECTS} or {INSTALLED_OBJECTS}; give --file")


def load_objects(path: Path) -> list[dict[str, Any]]:
    """Every line of the NDJSON as an object; a LogwardenError naming the line that is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LogwardenError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise LogwardenError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    objects = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise LogwardenError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(obj, dict) or "type" not in obj or "id" not in obj:
            raise LogwardenError(f"{path}:{number}: not a saved object (needs type and id)")
        objects.append(obj)
    return objects


def for_prefix(objects: list[dict[str, Any]], prefix: str = DEFAULT_INDEX_PREFIX,
               min_score: float | None = None) -> list[dict[str, Any]]:
    """Copies of ``objects`` pointed at ``<prefix>-anomalies``, the rule paging from ``min_score`` when given."""
    alias = f"{prefix}-anomalies"
    out = []
    for obj in json.loads(json.dumps(objects)):  # deep copy
        attrs = obj.get("attributes", {})
        if obj["type"] == "index-pattern":
            attrs["title"] = f"{prefix}-templates" if obj["id"] == TEMPLATES_VIEW else alias
        elif obj["type"] == "alert":
            params = attrs["params"]
            params["index"] = [alias]
            if min_score is not None:
                query = json.loads(params["esQuery"])
                for clause in query["query"]["bool"]["filter"]:
                    if "range" in clause and "anomaly.score" in clause["range"]:
                        clause["range"]["anomaly.score"] = {"gte": min_score}
                params["esQuery"] = json.dumps(query, indent=2)
        out.append(obj)
    return out


def to_ndjson(objects: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(obj, separators=(",", ":")) + "\n" for obj in objects).encode("utf-8")


def multipart(ndjson: bytes, filename: str = "logwarden.ndjson") -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one ``file`` part, as the ``_import`` API wants; (body, content type)."""
    boundary = f"logwarden-{uuid.uuid4().hex}"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/ndjson\r\n\r\n").encode()
    return head + ndjson + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@dataclass(frozen=True)
class KibanaAuth:
    api_key: str | None = None
    username: str | None = None
    password: str | None = None

    def header(self) -> str | None:
        if self.api_key:
            return f"ApiKey {self.api_key}"
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            return f"Basic {token}"
        return None


def import_url(url: str, space: str | None) -> str:
    """``<url>[/s/<space>]/api/saved_objects/_import?overwrite=true``; a bad space id is a LogwardenError."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise LogwardenError(f"Kibana URL {url!r} is not an http(s) URL")
    base = url.rstrip("/")
    if space and space != "default":
        if not set(space) <= _SPACE_CHARS:
            raise LogwardenError(f"space {space!r} is not a Kibana space id (lower case letters, digits, '_', '-')")
        base += f"/s/{space}"
    return f"{base}/api/saved_objects/_import?overwrite=true"


def import_objects(url: str, objects: list[dict[str, Any]], *, space: str | None = None,
                   auth: KibanaAuth | None = None, timeout: float = 30.0, ca_certs: str | None = None
                   ) -> dict[str, Any]:
    """POST the objects to Kibana's ``_import`` (overwriting ours); its answer, or a LogwardenError saying why not."""
    target = import_url(url, space)
    body, content_type = multipart(to_ndjson(objects))
    headers = {"kbn-xsrf": "logwarden", "Content-Type": content_type, "Accept": "application/json"}
    credentials = (auth or KibanaAuth()).header()
    if credentials:
        headers["Authorization"] = credentials
    request = urllib.request.Request(target, data=body, headers=headers, method="POST")
    context = ssl.create_default_context(cafile=ca_certs) if ca_certs else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode("utf-8", "replace").strip()
        raise LogwardenError(f"Kibana refused the import: HTTP {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LogwardenError(f"cannot reach Kibana at {url}: {reason}") from None
    except ValueError:
        raise LogwardenError(f"Kibana at {url} answered with something that is not JSON") from None
    if not answer.get("success"):
        errors = answer.get("errors") or []
        listed = "; ".join(f"{e.get('type')}/{e.get('id')}: {e.get('error', {}).get('type', e.get('error'))}"
                           for e in errors[:5]) or json.dumps(answer)[:300]
        raise LogwardenError(f"Kibana imported {answer.get('successCount', 0)} of {len(objects)} objects: {listed}")
    return dict(answer)
