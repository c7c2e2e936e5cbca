"""What the shipped Prometheus rules and Grafana dashboards query: their PromQL expressions and metric names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "prometheus" / "logwarden-rules.yml"
RULE_TESTS = REPO / "prometheus" / "tests" / "logwarden-rules.test.yml"
DASHBOARDS = sorted((REPO / "grafana").glob("*.json"))
_NAME = re.compile(r"\b(logwarden_[a-z0-9_]+|up)\b")


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query") and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in DASHBOARDS:
        walk(json.loads(path.read_text(encoding="utf-8")))
    return found


def metric_names(exprs: list[str]) -> set[str]:
    """Metric names in PromQL expressions (ours, plus ``up``); label values in quotes are not names."""
    names: set[str] = set()
    for expr in exprs:
        names.update(_NAME.findall(re.sub(r'"[^"]*"', '""', expr)))
    return names

