"""Structure of deploy/kubernetes and of the compose Prometheus: probes on the paths the worker serves, the metrics
port agreed everywhere, secrets only from Secret objects, and every flag, config key and variable one that
``logwarden worker`` really reads. No cluster runs here, so the files are read, not applied."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.cli.app import cli
from pipeline.cli.stream import _ES_SECRETS
from pipeline.sources.kafka import _ENV as KAFKA_ENV
from pipeline.stream.health import make_app
from tests.observability import RULES

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "kubernetes"
WORKER = cli.commands["worker"]
OPTIONS = {opt for param in WORKER.params for opt in getattr(param, "opts", [])}
CONFIG_KEYS = {param.name for param in WORKER.params if param.name and param.name != "config_file"}
ENVVARS = {param.envvar for param in WORKER.params if isinstance(getattr(param, "envvar", None), str)}
SECRET_VARS = set(_ES_SECRETS) | set(KAFKA_ENV)
# Options stored under another name than their flag (click's ``"--topic", "topics"``).
CONFIG_ALIASES = {"topic": "topics", "format": "input_format"}


def documents() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is None:
                continue
            if doc.get("kind") == "Kustomization":
                continue
            assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), path
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


DOCS = documents()
DEPLOYMENT = DOCS[("Deployment", "logwarden-worker")]
POD = DEPLOYMENT["spec"]["template"]
CONTAINER = POD["spec"]["containers"][0]
WORKER_YAML = yaml.safe_load(DOCS[("ConfigMap", "logwarden-worker")]["data"]["worker.yaml"])


def _status(path: str) -> str:
    app = make_app(__import__("prometheus_client").CollectorRegistry(), lambda: (True, "ok"))
    seen: list[str] = []
    app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda status, headers: seen.append(status))
    return seen[0]


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    # The retraining CronJob ships separately (deploy/kubernetes/retrain-cronjob.yaml) and joins the list then.
    assert on_disk - {"retrain-cronjob.yaml"} <= listed and all((K8S / name).is_file() for name in listed)


def test_selector_matches_the_pod_and_the_service() -> None:
    labels = POD["metadata"]["labels"]
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert DOCS[("Service", "logwarden-worker")]["spec"]["selector"].items() <= labels.items()


def test_probes_use_the_paths_the_worker_serves_on_the_metrics_port() -> None:
    port = WORKER_YAML["metrics_port"]
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert ports["metrics"] == port
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert CONTAINER["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert _status("/healthz").startswith("200") and _status("/readyz").startswith("200")
    annotations = POD["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    service_ports = DOCS[("Service", "logwarden-worker")]["spec"]["ports"]
    assert {p["targetPort"] for p in service_ports} == {"metrics"}


def test_resources_and_a_grace_period_for_the_final_flush() -> None:
    resources = CONTAINER["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
    assert POD["spec"]["terminationGracePeriodSeconds"] >= 30
    assert POD["spec"]["securityContext"]["runAsNonRoot"] is True


def test_command_flags_and_config_keys_are_worker_options() -> None:
    argv = CONTAINER["args"]
    assert argv[:2] == ["logwarden", "worker"]
    flags = {arg for arg in argv[2:] if arg.startswith("--")}
    assert flags <= OPTIONS, flags - OPTIONS
    config_path = argv[argv.index("--config") + 1]
    mounts = {m["mountPath"]: m["name"] for m in CONTAINER["volumeMounts"]}
    assert mounts[str(Path(config_path).parent)] == "config"
    keys = {CONFIG_ALIASES.get(k, k) for k in (key.replace("-", "_") for key in WORKER_YAML)}
    assert keys <= CONFIG_KEYS, keys - CONFIG_KEYS
    assert mounts[WORKER_YAML["model_dir"]] == "models"


def test_secrets_come_from_secret_objects_into_variables_the_worker_reads() -> None:
    env = CONTAINER["env"]
    assert env
    example = DOCS[("Secret", "logwarden")]["stringData"]
    for entry in env:
        assert entry["name"] in SECRET_VARS | ENVVARS, entry["name"]
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "logwarden" and ref["key"] in example
    assert set(example) <= SECRET_VARS
    # No secret in the ConfigMap or on the command line.
    assert not {"api_key", "password", "username"} & set(WORKER_YAML)
    assert not any("password" in arg.lower() or "api-key" in arg for arg in CONTAINER["args"])


# ------------------------------------------------------------------------------------- compose Prometheus
def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))["services"])


def test_compose_prometheus_scrapes_the_worker_with_our_rules() -> None:
    services = _compose()
    prometheus = services["prometheus"]
    mounts = {m.split(":")[1]: REPO / m.split(":")[0] for m in prometheus["volumes"] if m.startswith("./")}
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = config_flag.split("=", 1)[1]
    config = yaml.safe_load(mounts[config_path].read_text())
    for rule_file in config["rule_files"]:
        assert mounts[rule_file].resolve() == RULES.resolve()
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "logwarden-worker" and 'up{job="logwarden-worker"}' in RULES.read_text()
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    worker_yaml = yaml.safe_load((REPO / "examples" / "worker.yaml").read_text())
    assert host == "worker" and int(port) == worker_yaml["metrics_port"]
    assert f"{port}:{port}" in services["worker"]["ports"]
    assert prometheus["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")


def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail("promtool is missing (CI=true never skips; apt-get install prometheus)", pytrace=False)
        pytest.skip("promtool is missing: apt-get install prometheus")
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(RULES)]  # where the container sees /etc/prometheus/logwarden-rules.yml
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_worker_accepts_the_configmap_file(tmp_path: Path) -> None:
    """The real option resolver reads the ConfigMap's worker.yaml: it gets as far as loading the model."""
    from click.testing import CliRunner  # noqa: PLC0415

    path = tmp_path / "worker.yaml"
    path.write_text(DOCS[("ConfigMap", "logwarden-worker")]["data"]["worker.yaml"])
    result = CliRunner().invoke(cli, ["worker", "--config", str(path), "--model-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "config" not in result.output.lower() and "none" in result.output, result.output
    path.write_text(path.read_text() + "metric_port: 1\n")
    result = CliRunner().invoke(cli, ["worker", "--config", str(path)])
    assert result.exit_code == 2 and "metric_port" in result.output
