"""The HTML report: self-contained (plotly inlined, nothing fetched), bounded memory, hostile text stays text,
optional components, and, in headless Chromium, plots drawn without console errors and a sortable table."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.sinks.html_report import MAX_POINTS, ReportData, render_html_report

PLOTS = ("plot-score-time", "plot-score-distribution", "plot-template-heatmap", "plot-new-templates")
HOSTILE = "</script><script>document.body.dataset.pwned=1</script>\udcff<b>"


def doc(n: int, score: float, anomalous: bool, entity: str | None = None, **anomaly: Any) -> dict[str, Any]:
    second = n % 60
    stamp = f"2026-01-01T10:{n // 60 % 60:02d}:{second:02d}.000Z"
    return {"@timestamp": stamp, "entity": {"id": entity or f"blk_{n}", "field": "message"},
            "window": {"start": stamp, "end": stamp, "kind": "session", "late": False},
            "anomaly": {"score": score, "threshold": 0.6, "is_anomaly": anomalous, **anomaly},
            "model": {"version": "20260101T000000Z-abc"},
            "templates": [{"id": "T0000000001", "template": "Served block <*> to <*>", "observed": 3,
                           "expected": 0.5, "new": False, "share": 0.2},
                          {"id": "T00000000ff", "template": f"Exception {HOSTILE}", "observed": 1, "expected": 0.0,
                           "new": n % 7 == 0}],
            "log": {"count": 4, "samples": [f"line {n} {HOSTILE}"]}}


def stats() -> dict[str, Any]:
    return {"lines": 1234, "windows": 300, "anomalies": 12, "decode": {"matched": 1200, "invalid_utf8": 34},
            "warnings": ["few windows"]}


def build(n: int = 300, **anomaly: Any) -> ReportData:
    data = ReportData()
    for i in range(n):
        anomalous = i % 25 == 0
        data.add(doc(i, 0.9 + i / 10_000 if anomalous else 0.3 + (i % 10) / 100, anomalous,
                     **(anomaly if anomalous else {})))
    return data


def page(data: ReportData) -> str:
    return render_html_report(data, stats(), {"inputs": ["app.log"], "model_version": None})


def test_page_is_self_contained_with_the_header_facts() -> None:
    html = page(build())
    assert not re.search(r"<script[^>]+src=", html) and "cdn.plot.ly" not in html.split("</script>")[0][-200:]
    assert "plotly.js v" in html  # the library itself is inlined
    for plot in PLOTS:
        assert f'id="{plot}"' in html
    assert "app.log" in html and "20260101T000000Z-abc" in html and "0.6000" in html
    assert '<tr><td>invalid_utf8</td><td class="num">34</td></tr>' in html  # a table, not a dict
    assert "{'matched'" not in html
    summary = json.loads(re.search(r'id="report-summary">(.*?)</script>', html).group(1))  # type: ignore[union-attr]
    assert summary == {"windows": 300, "anomalies": 12}


def test_hostile_text_stays_text() -> None:
    html = page(build(60))
    assert "dataset.pwned" in html  # it is there, as data ...
    assert "<script>document.body" not in html  # ... never as markup
    assert "&lt;/script&gt;" in html
    assert "\udcff" not in html and "\ufffd" in html  # a lone surrogate cannot be written as UTF-8: replaced


def test_components_are_shown_only_when_present() -> None:
    assert ">components<" not in page(build())
    html = page(build(components={"iforest": 0.91, "rarity": 0.42}))
    assert ">components<" in html and "iforest 0.910<br>rarity 0.420" in html


def test_memory_stays_bounded_and_every_anomaly_is_kept() -> None:
    data = ReportData()
    for i in range(3 * MAX_POINTS):
        data.add(doc(i, 0.9 if i % 1000 == 0 else 0.3, i % 1000 == 0))
    assert len(data.anomalies) == 3 * MAX_POINTS // 1000
    assert MAX_POINTS // 4 <= len(data.normal) <= MAX_POINTS
    assert data.windows == 3 * MAX_POINTS


def test_new_templates_listed_with_first_appearance() -> None:
    data = build(30)
    assert set(data.new_templates) == {"T00000000ff"}
    assert data.new_templates["T00000000ff"]["first"] == "2026-01-01T10:00:00.000Z"
    assert data.new_templates["T00000000ff"]["windows"] == 5  # windows 0, 7, 14, 21, 28


# ----------------------------------------------------------------------------------------- Chromium
@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail("chromium is missing (CI=true never skips; apt-get install chromium)", pytrace=False)
        pytest.skip("chromium is missing: apt-get install chromium")
    return path


def open_in_chromium(chromium: str, path: Path) -> tuple[str, list[str]]:
    """(DOM after the scripts ran, console messages) of ``path`` in headless Chromium, network off."""
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=10000", f"--user-data-dir={path.parent / 'profile'}",
         "--proxy-server=http://127.0.0.1:9", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def test_the_console_check_sees_errors(chromium: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>notAFunction();</script></body></html>")
    _, console = open_in_chromium(chromium, broken)
    assert any("notAFunction" in line for line in console)


def test_report_draws_every_plot_without_console_errors(chromium: str, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(page(build(components={"iforest": 0.9})), encoding="utf-8")
    dom, console = open_in_chromium(chromium, report)
    assert console == []
    for plot in PLOTS:
        block = dom.split(f'id="{plot}"', 1)[1].split('id="plot-', 1)[0]
        assert 'class="main-svg"' in block, f"{plot} was not drawn"
    assert "data-pwned" not in dom  # the hostile line did not run as a script


def test_entities_table_sorts_on_click(chromium: str, tmp_path: Path) -> None:
    data = ReportData()
    for i, (entity, score) in enumerate([("b", 0.7), ("a", 0.9), ("c", 0.8)]):
        data.add(doc(i, score, True, entity=entity))
    html = page(data)
    html = html.replace("</body>", "<script>document.querySelector('#entities th').click();</script></body>")
    report = tmp_path / "sorted.html"
    report.write_text(html, encoding="utf-8")
    dom, console = open_in_chromium(chromium, report)
    assert console == []
    table = dom.split('id="entities"', 1)[1].split("</table>", 1)[0]
    order = re.findall(r'<tr><td data-sort="([abc])">', table)
    assert order == ["c", "b", "a"]  # by entity, descending on the first click (was by score: a, c, b)
    assert 'data-dir="desc"' in table
