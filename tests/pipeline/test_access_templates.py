"""Access logs are logs too: a burst of 5xx on one endpoint is a burst of one template, and detect flags it."""

from __future__ import annotations

import random
from pathlib import Path

from pipeline import embedded as jobs
from pipeline.cli.common import settings_from
from pipeline.stages.formats import access_template, normalise_path


def test_path_normalisation_masks_ids() -> None:
    assert normalise_path("/api/users/42/orders?id=7#x") == "/api/users/<*>/orders"
    assert normalise_path("/o/550e8400-e29b-41d4-a716-446655440000/deadbeef42") == "/o/<*>/<*>"
    assert normalise_path("/s/eyJhbGciOiJIUzI1NiJ9abc123") == "/s/<*>"
    assert normalise_path("/" + "/".join("abc" for _ in range(40))).count("/") == 13  # bounded
    assert access_template("GET", "/api/users/42", "503") == "GET /api/users/<*> 5xx"
    assert access_template(None, "", "400") == "<malformed> 4xx"


def _log(path: Path, burst: range) -> None:
    rng = random.Random(5)
    lines = []
    for minute in range(180):
        for _ in range(20):
            endpoint = rng.choice([f"/api/users/{rng.randrange(10**6)}", f"/api/orders/{rng.randrange(999)}",
                                   "/healthz", "/login"])
            status = 503 if minute in burst and endpoint.startswith("/api/orders") else rng.choice([200, 200, 304])
            lines.append(f'10.0.{rng.randrange(4)}.{rng.randrange(250)} - - [30/Nov/2026:{minute // 60 + 8:02d}:'
                         f'{minute % 60:02d}:{rng.randrange(60):02d} +0000] "GET {endpoint} HTTP/1.1" {status} '
                         f'{rng.randrange(9000)} "-" "k6/0.50"')
    lines.insert(500, '10.0.0.9 - - [30/Nov/2026:08:25:00 +0000] "\\x16\\x03\\x01\\x02" 400 157 "-" "-"')  # TLS junk
    lines.insert(700, "not an access log line")
    path.write_text("\n".join(lines) + "\n")


def _detect_burst(tmp_path: Path, **extra: object) -> tuple[list[dict], dict]:
    log = tmp_path / "access.log"
    _log(log, burst=range(120, 123))
    # Whole-site windows per minute (the preset's entity is the client; a flag overrides it).
    settings = settings_from({"preset": "nginx", "window": "tumbling", "window_size": "1m",
                              "entity_regex": r"^(?P<site>GET|POST)", **extra})
    docs, stats = jobs.detect([str(log)], settings, None)
    ranked = sorted(docs, key=lambda d: -d["anomaly"]["score"])
    assert stats.decode["unmatched"] == 1  # the prose line; the TLS junk is a record of template <malformed> 4xx
    return ranked, stats.decode


def test_burst_of_5xx_on_one_endpoint_is_the_top_anomaly(tmp_path: Path) -> None:
    ranked, _ = _detect_burst(tmp_path)
    top = ranked[:3]
    assert {d["window"]["start"][11:16] for d in top} == {"10:00", "10:01", "10:02"}
    assert all(any(t["template"] == "GET /api/orders/<*> 5xx" for t in d["templates"]) for d in top)
    assert top[0]["anomaly"]["is_anomaly"] and not any(d["anomaly"]["is_anomaly"] for d in ranked[3:])
    # Told that about 3% of its own windows are abnormal, detect flags the whole burst.
    told, _ = _detect_burst(tmp_path, contamination=0.03)
    assert [d["anomaly"]["is_anomaly"] for d in told[:4]] == [True, True, True, False]


def test_burst_of_5xx_is_flagged_whole_with_the_default_threshold(tmp_path: Path) -> None:
    ranked, _ = _detect_burst(tmp_path)
    assert all(d["anomaly"]["is_anomaly"] for d in ranked[:3])
