"""deploy/kubernetes/retrain-cronjob.yaml: a CronJob whose command is a valid ``logwarden train`` invocation."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.cli.train import train

CRONJOB = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "retrain-cronjob.yaml"


def test_the_cronjob_runs_a_valid_train_command_without_overlap() -> None:
    job = yaml.safe_load(CRONJOB.read_text(encoding="utf-8"))
    assert job["kind"] == "CronJob" and job["apiVersion"] == "batch/v1"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    [container] = pod["containers"]
    args = container["args"]
    assert args[:2] == ["logwarden", "train"]
    ctx = train.make_context("train", list(args[2:]))  # every flag exists and every value parses
    assert ctx.params["source"] == "kafka:logs" and ctx.params["warm_start"] is True
    assert ctx.params["model_dir"] == "/models"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/models" in mounts and container["resources"]["limits"]["memory"] == "1Gi"
