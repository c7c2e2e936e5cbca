"""The HTML report of ``logwarden detect --report``: one self-contained page with plots, that works offline.

Plots are drawn by plotly, whose JavaScript is inlined once in the page (no CDN, no network): the anomaly score
of every window over time with the threshold, the score distribution, a heatmap of the explained templates by
time, and new templates over time. Tables: the run (input, model version, threshold, line and decode counts),
the top anomalous entities (sortable by clicking a header) with their explanations, score components and sample
lines, and the templates never seen in training.

:class:`ReportData` sees every scored window (``add``) but keeps little: every anomaly (the report lists them),
at most :data:`MAX_POINTS` normal scores (a systematic sample: the shape of the plot, bounded memory; SVG
markers, not WebGL, so the page draws on machines without a GPU), and template counts per time bucket for the
heatmap (buckets merge two by two beyond :data:`HEAT_KEYS`). plotly is imported only when a report is rendered,
so ``detect`` without ``--report`` does not pay for it.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

MAX_POINTS = 5_000
MAX_ENTITIES = 200
HEATMAP_TEMPLATES = 25
HEATMAP_COLUMNS = 60
_SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var down = th.dataset.dir !== 'desc';
      table.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = down ? 'desc' : 'asc';
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        var nx = parseFloat(x), ny = parseFloat(y);
        var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return down ? -cmp : cmp;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""
_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222}h1{margin-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top;
text-align:left}th{background:#f4f4f4}table.sortable th{cursor:pointer}table.sortable th[data-dir=desc]::after{
content:" \\25BC"}table.sortable th[data-dir=asc]::after{content:" \\25B2"}code{font-size:88%}
.num{text-align:right;font-variant-numeric:tabular-nums}.grid{display:flex;flex-wrap:wrap;gap:1em}
.grid>div{flex:1 1 560px;min-width:0}.grid>div.wide{flex-basis:100%}ul.why{margin:0;padding-left:1.1em}
details summary{cursor:pointer;color:#555}
"""


HEAT_KEYS = 4_000  # distinct time buckets kept before they are merged two by two


def _epoch(stamp: str) -> int:
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _nice_step(span: int, columns: int) -> int:
    """A readable bucket width (seconds) that fits ``span`` seconds into at most ``columns`` buckets."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span / step <= columns:
            return step
    return 86400 * (span // (86400 * columns) + 1)


class ReportData:
    """What the report needs from a run, gathered one scored window at a time."""

    def __init__(self) -> None:
        self.anomalies: list[dict[str, Any]] = []
        self.normal: list[tuple[str, float]] = []
        self._normal_seen = 0
        self._stride = 1
        self.thresholds: Counter[float] = Counter()
        self.versions: Counter[str] = Counter()
        self.heat: dict[int, Counter[str]] = defaultdict(Counter)  # bucket start (epoch s) -> template id -> lines
        self.heat_step = 1  # seconds per bucket: doubles when there are more than HEAT_KEYS buckets
        self.template_text: dict[str, str] = {}
        self.new_templates: dict[str, dict[str, Any]] = {}

    def add(self, doc: dict[str, Any]) -> None:
        anomaly = doc["anomaly"]
        self.thresholds[float(anomaly["threshold"])] += 1
        self.versions[str(doc.get("model", {}).get("version", ""))] += 1
        bucket = _epoch(doc["@timestamp"]) // self.heat_step * self.heat_step
        for entry in doc.get("templates", []):
            self.heat[bucket][entry["id"]] += int(entry.get("observed", 0))
            self.template_text.setdefault(entry["id"], entry.get("template", ""))
            if entry.get("new"):
                seen = self.new_templates.setdefault(entry["id"], {"template": entry.get("template", ""),
                                                                   "first": doc["@timestamp"], "windows": 0})
                seen["windows"] += 1
                seen["first"] = min(seen["first"], doc["@timestamp"])
        if len(self.heat) > HEAT_KEYS:
            self._coarsen()
        if anomaly["is_anomaly"]:
            self.anomalies.append(doc)
            return
        # Systematic sample of the normal windows: keep every stride-th, double the stride when full.
        if self._normal_seen % self._stride == 0:
            self.normal.append((doc["@timestamp"], float(anomaly["score"])))
            if len(self.normal) >= MAX_POINTS:
                self.normal = self.normal[::2]
                self._stride *= 2
        self._normal_seen += 1

    def _coarsen(self) -> None:
        self.heat_step *= 2
        merged: dict[int, Counter[str]] = defaultdict(Counter)
        for bucket, counts in self.heat.items():
            merged[bucket // self.heat_step * self.heat_step].update(counts)
        self.heat = merged

    @property
    def windows(self) -> int:
        return self._normal_seen + len(self.anomalies)


# ------------------------------------------------------------------------------------------ figures
def _time_buckets(data: ReportData) -> tuple[int, int, int]:
    """(first bucket start, last bucket start, width) in epoch seconds, shared by the heatmap and new templates."""
    if not data.heat:
        return 0, 0, 60
    first, last = min(data.heat), max(data.heat)
    step = max(data.heat_step, _nice_step(last - first + data.heat_step, HEATMAP_COLUMNS))
    return first // step * step, last // step * step, step


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{unit}" if n == 1 else f"{n} {unit}s"
    return "second" if seconds == 1 else f"{seconds} seconds"


def _figures(data: ReportData, threshold: float | None) -> list[tuple[str, Any]]:
    import plotly.graph_objects as go  # noqa: PLC0415 - only when a report is written

    layout = {"margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "template": "plotly_white", "height": 380}
    figures: list[tuple[str, Any]] = []

    score = go.Figure(layout={**layout, "title": "Anomaly score of every window over time",
                              "xaxis": {"title": "window end (UTC)"}, "yaxis": {"title": "score"}})
    if data.normal:
        score.add_trace(go.Scatter(x=[t for t, _ in data.normal], y=[s for _, s in data.normal], mode="markers",
                                     name=f"normal ({data._normal_seen})", marker={"size": 4, "color": "#9aa5b1"}))
    score.add_trace(go.Scatter(
        x=[d["@timestamp"] for d in data.anomalies], y=[d["anomaly"]["score"] for d in data.anomalies],
        mode="markers", name=f"anomalous ({len(data.anomalies)})", marker={"size": 7, "color": "#d64545"},
        text=[str(d["entity"]["id"]) for d in data.anomalies], hovertemplate="%{text}<br>%{x}<br>score %{y:.3f}"))
    if threshold is not None:
        score.add_hline(y=threshold, line={"color": "#d64545", "dash": "dash"},
                        annotation_text=f"threshold {threshold:.3f}")
    figures.append(("plot-score-time", score))

    scores = [s for _, s in data.normal] + [d["anomaly"]["score"] for d in data.anomalies]
    dist = go.Figure(layout={**layout, "title": "Score distribution", "xaxis": {"title": "score"},
                             "yaxis": {"title": "windows", "type": "log", "dtick": 1},
                             "bargap": 0.05})
    dist.add_trace(go.Histogram(x=scores, nbinsx=60, marker={"color": "#5b7db1"}, name="windows"))
    if threshold is not None:
        dist.add_vline(x=threshold, line={"color": "#d64545", "dash": "dash"}, annotation_text="threshold")
    figures.append(("plot-score-distribution", dist))

    first, last, step = _time_buckets(data)
    starts = list(range(first, last + 1, step))
    stamps = [datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z") for start in starts]
    if data.heat:
        columns: dict[int, Counter[str]] = defaultdict(Counter)
        for bucket, counts in data.heat.items():
            columns[bucket // step * step].update(counts)
        totals: Counter[str] = Counter()
        for counts in data.heat.values():
            totals.update(counts)
        top = [tid for tid, _ in totals.most_common(HEATMAP_TEMPLATES)]
        z = [[columns[start][tid] if start in columns else 0 for start in starts] for tid in top]
        labels = [f"{tid} {data.template_text.get(tid, '')[:60]}" for tid in top]
        heat = go.Figure(layout={**layout, "title": f"Explained templates by time (top {len(top)}, lines per "
                                 f"{_duration(step)})", "height": max(380, 22 * len(top) + 120),
                                 "yaxis": {"autorange": "reversed", "automargin": True}, "margin": {"l": 20}})
        heat.add_trace(go.Heatmap(z=z, x=stamps, y=labels, colorscale="YlOrRd",
                                  hovertemplate="%{y}<br>%{x}<br>%{z} lines<extra></extra>"))
        figures.append(("plot-template-heatmap", heat))

    appeared: Counter[int] = Counter()
    for info in data.new_templates.values():
        appeared[_epoch(info["first"]) // step * step] += 1
    new = go.Figure(layout={**layout, "title": f"New templates (never seen in training), by first appearance "
                            f"(per {_duration(step)})", "xaxis": {"title": "window end (UTC)"},
                            "yaxis": {"title": "new templates", "rangemode": "tozero"}, "bargap": 0.1})
    new.add_trace(go.Bar(x=stamps, y=[appeared[start] for start in starts], marker={"color": "#e08a2c"},
                         name="new templates", hovertemplate="%{x}<br>%{y} new<extra></extra>"))
    if not appeared:
        new.add_annotation(text="none: every template was seen in training", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 16, "color": "#777"})
        new.update_xaxes(visible=False)
        new.update_yaxes(visible=False)
    figures.append(("plot-new-templates", new))
    return figures


# ------------------------------------------------------------------------------------------- tables
def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _reason(entry: dict[str, Any]) -> str:
    if entry.get("new"):
        return f"NEW {entry.get('observed')}x"
    share = entry.get("share")
    where = f", in {share:.1%} of training windows" if isinstance(share, int | float) else ""
    return f"{entry.get('observed')}x (expected {entry.get('expected')}{where})"


def _components(doc: dict[str, Any]) -> str:
    parts = doc["anomaly"].get("components")
    if not isinstance(parts, dict) or not parts:
        return ""
    return "<br>".join(f"{_esc(k)} {v:.3f}" if isinstance(v, int | float) else f"{_esc(k)} {_esc(v)}"
                       for k, v in sorted(parts.items()))


def _entities_table(anomalies: list[dict[str, Any]]) -> str:
    by_entity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in anomalies:
        by_entity[str(doc["entity"]["id"])].append(doc)
    ranked = sorted(by_entity.items(), key=lambda kv: -max(d["anomaly"]["score"] for d in kv[1]))[:MAX_ENTITIES]
    with_components = any(_components(d) for d in anomalies)
    head = ["entity", "max score", "anomalous windows", "first window start", "lines"]
    head += ["components"] if with_components else []
    head += ["why (strongest window)", "sample lines"]
    rows = []
    for entity, docs in ranked:
        best = max(docs, key=lambda d: d["anomaly"]["score"])
        why = "".join(f"<li><code>{_esc(e['id'])}</code> {_esc(_reason(e))}: {_esc(e.get('template', ''))}</li>"
                      for e in best.get("templates", []))
        samples = "".join(f"<li><code>{_esc(s)}</code></li>" for s in best.get("log", {}).get("samples", []))
        first = min(d["window"]["start"] for d in docs)
        lines = sum(int(d.get("log", {}).get("count", 0)) for d in docs)
        cells = [f'<td data-sort="{_esc(entity)}">{_esc(entity)}</td>',
                 f'<td class="num" data-sort="{best["anomaly"]["score"]}">{best["anomaly"]["score"]:.3f}</td>',
                 f'<td class="num" data-sort="{len(docs)}">{len(docs)}</td>',
                 f'<td data-sort="{_esc(first)}">{_esc(first)}</td>',
                 f'<td class="num" data-sort="{lines}">{lines}</td>']
        if with_components:
            cells.append(f'<td data-sort="">{_components(best)}</td>')
        cells.append(f'<td data-sort=""><ul class="why">{why or "<li>unusual mix of templates</li>"}</ul></td>')
        cells.append(f'<td data-sort=""><details><summary>{len(best.get("log", {}).get("samples", []))} lines'
                     f"</summary><ul>{samples}</ul></details></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f"<th>{_esc(h)}</th>" for h in head)
    shown = f" (top {MAX_ENTITIES} of {len(by_entity)})" if len(by_entity) > MAX_ENTITIES else ""
    return (f"<h2>Top anomalous entities{shown}</h2><p>Click a column header to sort.</p>"
            f'<table class="sortable" id="entities"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}'
            "</tbody></table>")


def _new_templates_table(new: dict[str, dict[str, Any]]) -> str:
    if not new:
        return "<h2>New templates</h2><p>None: every template was seen in training.</p>"
    rows = "".join(f'<tr><td data-sort="{_esc(tid)}"><code>{_esc(tid)}</code></td>'
                   f'<td data-sort="{_esc(info["first"])}">{_esc(info["first"])}</td>'
                   f'<td class="num" data-sort="{info["windows"]}">{info["windows"]}</td>'
                   f'<td data-sort="{_esc(info["template"])}"><code>{_esc(info["template"])}</code></td></tr>'
                   for tid, info in sorted(new.items(), key=lambda kv: kv[1]["first"]))
    return ('<h2>New templates</h2><table class="sortable" id="new-templates"><thead><tr><th>id</th>'
            "<th>first seen</th><th>windows</th><th>template</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _run_table(data: ReportData, stats: dict[str, Any], meta: dict[str, Any], threshold: float | None) -> str:
    versions = ", ".join(v for v in data.versions if v) or meta.get("model_version") or "-"
    rows = [("input", ", ".join(meta.get("inputs", [])) or "-"), ("model version", versions),
            ("threshold", f"{threshold:.4f}" if threshold is not None else "-"),
            ("generated", meta.get("generated") or datetime.now().astimezone().isoformat(timespec="seconds"))]
    for key in ("lines", "windows", "anomalies", "no_entity", "late_records", "templates", "unseen_templates",
                "untimed"):
        if key in stats:
            rows.append((key.replace("_", " "), f"{stats[key]:,}" if isinstance(stats[key], int) else stats[key]))
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    decode = stats.get("decode") or {}
    decode_rows = "".join(f'<tr><td>{_esc(k)}</td><td class="num">{v:,}</td></tr>'
                          for k, v in sorted(decode.items(), key=lambda kv: (-kv[1], kv[0]))
                          if isinstance(v, int))
    decode_table = (f'<table id="decode"><thead><tr><th>decoding</th><th>lines</th></tr></thead>'
                    f"<tbody>{decode_rows}</tbody></table>") if decode_rows else ""
    warnings = "".join(f"<li>{_esc(w)}</li>" for w in stats.get("warnings") or [])
    return (f'<div class="grid"><div><table id="run">{body}</table></div><div>{decode_table}</div></div>'
            + (f"<h3>Warnings</h3><ul>{warnings}</ul>" if warnings else ""))


_SURROGATE = re.compile("[\ud800-\udfff]")
_WIDE = {"plot-template-heatmap"}
_CONFIG = json.dumps({"displaylogo": False, "responsive": True})


def _script_json(figure: Any) -> str:
    """The figure as JSON that is safe inside ``<script>``: a log line holding ``</script>`` stays data."""
    text: str = figure.to_json()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html_report(data: ReportData, stats: dict[str, Any], meta: dict[str, Any],
                       title: str = "Logwarden anomalies") -> str:
    """The page; ``meta`` may hold ``inputs`` (paths), ``model_version`` and ``generated``."""
    from plotly.offline import get_plotlyjs  # noqa: PLC0415 - only when a report is written

    threshold = data.thresholds.most_common(1)[0][0] if data.thresholds else None
    figures = _figures(data, threshold)
    charts = "".join(f'<div class="plot{" wide" if div_id in _WIDE else ""}" id="{div_id}"></div>'
                     for div_id, _ in figures)
    # Drawn once the whole page is laid out: a plot drawn while its grid row is still being parsed takes the
    # full row's width and overflows its cell when the next plot arrives.
    draw = "".join(f'Plotly.newPlot("{div_id}", (f = {_script_json(figure)}).data, f.layout, {_CONFIG});'
                   for div_id, figure in figures)
    summary = json.dumps({"windows": data.windows, "anomalies": len(data.anomalies)})
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f"<style>{_STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
            f"<h1>{_esc(title)}</h1>{_run_table(data, stats, meta, threshold)}"
            f'<div class="grid" id="plots">{charts}</div>'
            f"{_entities_table(sorted(data.anomalies, key=lambda d: -d['anomaly']['score']))}"
            f"{_new_templates_table(data.new_templates)}"
            f'<script type="application/json" id="report-summary">{summary}</script>'
            f"<script>(function () {{ var f; {draw} }})();{_SORT_SCRIPT}</script></body></html>")
    # A lone surrogate (from a JSON log line's escape) cannot be written as UTF-8: show U+FFFD instead.
    return _SURROGATE.sub("\ufffd", page)
