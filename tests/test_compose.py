"""Structure of docker-compose.yml, the Dockerfile and examples/worker.yaml.

No Docker engine runs where the tests run, so these tests read the files: the services users expect are
there, each long-running one has a healthcheck, start-up order is expressed with ``depends_on``
conditions, and the worker and setup commands and environment match the ``logwarden`` CLI and the
compose network.
"""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
WORKER_YAML = REPO / "examples" / "worker.yaml"
LONG_RUNNING = ("kafka", "elasticsearch", "kibana", "worker", "prometheus")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever of the two compose spellings it uses."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {str(k): str(v) for k, v in raw.items()}


def command(service: dict[str, Any]) -> list[str]:
    raw = service["command"]
    return shlex.split(raw) if isinstance(raw, str) else [str(part) for part in raw]


def flag_value(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


def test_services_present(services: dict[str, Any]) -> None:
    assert {"kafka", "elasticsearch", "kibana", "worker", "setup", "prometheus"} <= set(services)


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_healthchecks(services: dict[str, Any], name: str) -> None:
    check = services[name].get("healthcheck")
    assert check, f"{name} has no healthcheck"
    test = check["test"]
    assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1
    for key in ("interval", "timeout", "retries"):
        assert key in check, f"{name} healthcheck lacks {key}"


def test_kafka_is_single_node_kraft_from_the_official_image(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    major = int(kafka["image"].split(":", 1)[1].split(".")[0])
    assert major >= 4, "Kafka 4.x: KRaft only, what kafka-python 3.0 is tested against"
    e = env(kafka)
    assert set(e["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in e)
    # A fixed cluster id must be a base64url-encoded 16-byte UUID or the broker refuses to format.
    cluster_id = e["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "=" * (-len(cluster_id) % 4))) == 16
    # Every listener's name has a protocol and the controller listener is the one the quorum uses.
    protocols = dict(pair.split(":") for pair in e["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = {item.split("://")[0] for item in e["KAFKA_LISTENERS"].split(",")}
    assert listeners <= set(protocols)
    assert e["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    # Internal topics cannot have replication factor 3 on one broker.
    assert e["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert e["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"


def test_elasticsearch_single_node_without_security(services: dict[str, Any]) -> None:
    es = services["elasticsearch"]
    e = env(es)
    assert e["discovery.type"] == "single-node"
    assert e["xpack.security.enabled"] == "false"
    version = es["image"].rsplit(":", 1)[1]
    assert version.split(".")[0] == "9", "the elasticsearch client pinned in pyproject.toml is 9.x"
    kibana = services["kibana"]
    assert kibana["image"].rsplit(":", 1)[1] == version, "Kibana must match the Elasticsearch version"
    assert "http://elasticsearch:9200" in env(kibana)["ELASTICSEARCH_HOSTS"]


def test_start_order_uses_depends_on_conditions(services: dict[str, Any]) -> None:
    def conditions(name: str) -> dict[str, str]:
        deps = services[name].get("depends_on")
        assert isinstance(deps, dict), f"{name}: depends_on needs the long form with conditions"
        return {dep: spec["condition"] for dep, spec in deps.items()}

    assert conditions("worker") == {
        "kafka": "service_healthy",
        "elasticsearch": "service_healthy",
        "setup": "service_completed_successfully",
    }
    assert conditions("setup") == {"elasticsearch": "service_healthy"}
    assert conditions("kibana") == {"elasticsearch": "service_healthy"}
    # A one-shot job must not be restarted, or service_completed_successfully never holds.
    assert str(services["setup"].get("restart", "no")) == "no"


def test_worker_and_setup_are_built_from_this_repo(services: dict[str, Any]) -> None:
    for name in ("worker", "setup"):
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (REPO / context / dockerfile).is_file()
    dockerfile_text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^RUN .*pip install .*\.", dockerfile_text, re.M), "the image installs this project"
    assert re.search(r"^USER (?!root)\S+", dockerfile_text, re.M), "the image does not run as root"


def test_worker_command_and_environment(services: dict[str, Any]) -> None:
    worker = services["worker"]
    argv = command(worker)
    assert argv[:2] == ["logwarden", "worker"]
    config_path = flag_value(argv, "--config")
    # The config file the command names is mounted from the sample in this repo.
    mounts = {m.split(":")[1]: m.split(":")[0] for m in worker["volumes"] if isinstance(m, str)}
    assert config_path in mounts
    assert (REPO / mounts[config_path]).resolve() == WORKER_YAML.resolve()

    e = env(worker)
    assert set(e) >= {"LOGWARDEN_KAFKA_BOOTSTRAP", "LOGWARDEN_ES_URL"}
    # The worker reaches Kafka on a listener the broker advertises inside the compose network.
    advertised = env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert any(item.endswith("//" + e["LOGWARDEN_KAFKA_BOOTSTRAP"]) for item in advertised)
    assert e["LOGWARDEN_ES_URL"] == "http://elasticsearch:9200"


def test_setup_command_matches_the_worker(services: dict[str, Any]) -> None:
    argv = command(services["setup"])
    assert argv[:2] == ["logwarden", "es-setup"]
    assert flag_value(argv, "--es-url") == env(services["worker"])["LOGWARDEN_ES_URL"]
    sample = yaml.safe_load(WORKER_YAML.read_text(encoding="utf-8"))
    assert flag_value(argv, "--index-prefix") == sample["index_prefix"], "setup and worker must share a prefix"


def test_sample_worker_config() -> None:
    sample = yaml.safe_load(WORKER_YAML.read_text(encoding="utf-8"))
    assert set(sample) == {
        "bootstrap_servers",
        "topic",
        "group_id",
        "model_dir",
        "es_url",
        "index_prefix",
        "entity_regex",
        "window",
        "session_gap",
        "metrics_port",
    }
    assert isinstance(sample["topic"], list) and sample["topic"]
    assert all(isinstance(t, str) and re.fullmatch(r"[A-Za-z0-9._-]+", t) for t in sample["topic"])
    re.compile(sample["entity_regex"])
    assert re.search(sample["entity_regex"], "Receiving block blk_-3040239967008202676 src: /10.0.0.1")
    assert sample["window"] in {"session", "tumbling"}
    assert isinstance(sample["metrics_port"], int) and 0 < sample["metrics_port"] < 65536


def _cli_command(name: str) -> Any:
    """The click command ``logwarden <name>``, or a skip while it is not written yet."""
    try:
        from pipeline.cli.app import cli
    except ImportError as exc:
        pytest.skip(f"the CLI does not import yet: {exc}")
    sub = cli.commands.get(name)
    if sub is None:
        pytest.skip(f"`logwarden {name}` is not implemented yet")
    return sub


@pytest.mark.parametrize("name", ["worker", "setup"])
def test_compose_flags_exist_in_the_cli(services: dict[str, Any], name: str) -> None:
    """Every flag the compose file passes is one the CLI accepts."""
    argv = command(services[name])
    sub = _cli_command(argv[1])
    known = {opt for param in sub.params for opt in getattr(param, "opts", [])}
    used = {arg for arg in argv[2:] if arg.startswith("--")}
    assert used <= known, f"logwarden {argv[1]} has no {sorted(used - known)}"


def test_worker_reads_the_compose_environment(services: dict[str, Any]) -> None:
    """The LOGWARDEN_* variables compose sets are ones ``logwarden worker`` reads."""
    sub = _cli_command("worker")
    envvars: set[str] = set()
    for param in sub.params:
        value = getattr(param, "envvar", None)
        envvars.update([value] if isinstance(value, str) else value or [])
    missing = {k for k in env(services["worker"]) if k.startswith("LOGWARDEN_")} - envvars
    assert not missing, f"logwarden worker ignores {sorted(missing)}"
