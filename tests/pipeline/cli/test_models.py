"""``logwarden models`` (list, show, promote, rollback, delete) and ``train --no-promote``; mistakes are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pipeline.cli.test_files import HDFS_FLAGS, SAMPLE, assert_user_error, run


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    model_dir = tmp_path_factory.mktemp("registry")
    first = run("train", str(SAMPLE), "--model-dir", str(model_dir), *HDFS_FLAGS)
    assert first.exit_code == 0, first.output
    v1 = (model_dir / "CURRENT").read_text().strip()
    second = run("train", str(SAMPLE), "--model-dir", str(model_dir), *HDFS_FLAGS, "--no-promote")
    assert second.exit_code == 0, second.output
    assert "not current: --no-promote" in second.stderr
    assert (model_dir / "CURRENT").read_text().strip() == v1
    v2 = next(v for v in (p.name for p in (model_dir / "versions").iterdir()) if v != v1)
    return model_dir, v1, v2


def test_list_marks_the_current_version_and_summarises(registry: tuple[Path, str, str]) -> None:
    model_dir, v1, v2 = registry
    result = run("models", "list", "--model-dir", str(model_dir))
    assert result.exit_code == 0, result.output
    lines = {line[2:].split()[0]: line for line in result.stdout.splitlines()}
    assert set(lines) == {v1, v2}
    assert lines[v1].startswith("* ") and lines[v2].startswith("  ")
    assert f"source=files:{SAMPLE}" in lines[v1]
    for field in ("created=", "lines=", "windows=", "templates=", "threshold=0."):
        assert field in lines[v1]
    as_json = [json.loads(line) for line in run("models", "list", "--model-dir", str(model_dir), "--json").stdout
               .splitlines()]
    assert {d["version"]: d["current"] for d in as_json} == {v1: True, v2: False}


def test_show_prints_the_manifest(registry: tuple[Path, str, str]) -> None:
    model_dir, v1, _ = registry
    manifest = json.loads(run("models", "show", v1, "--model-dir", str(model_dir)).stdout)
    assert manifest["version"] == v1 and manifest["current"] is True
    assert manifest["source"] == {"kind": "files", "name": str(SAMPLE)}
    assert manifest["stats"]["lines"] > 0 and manifest["stats"]["windows"] > 0
    assert manifest["model"]["contamination"] is not None and manifest["model"]["threshold"] is not None
    assert set(manifest["files"]) >= {"forest.skops", "miner.json"} and all(
        len(h) == 64 for h in manifest["files"].values())
    assert "scikit-learn" in manifest["libraries"]


def test_promote_rollback_delete(tmp_path: Path, registry: tuple[Path, str, str]) -> None:
    import shutil  # noqa: PLC0415

    model_dir = tmp_path / "copy"
    shutil.copytree(registry[0], model_dir)
    _, v1, v2 = registry
    assert run("models", "promote", v2, "--model-dir", str(model_dir)).exit_code == 0
    assert (model_dir / "CURRENT").read_text().strip() == v2
    assert_user_error(run("models", "delete", v2, "--model-dir", str(model_dir)), "is the current model")
    result = run("models", "rollback", "--model-dir", str(model_dir))
    assert result.exit_code == 0 and f"from {v2} to {v1}" in result.stderr
    assert run("models", "delete", v2, "--model-dir", str(model_dir)).exit_code == 0
    assert not (model_dir / "versions" / v2).exists()
    assert_user_error(run("models", "rollback", "--model-dir", str(model_dir)), "nothing to roll back to")


@pytest.mark.parametrize(("args", "fragment"), [
    (["models", "list"], "--model-dir is required"),
    (["models", "list", "--model-dir", "/nonexistent/models"], "does not exist"),
    (["models", "show", "nope", "--model-dir", "{dir}"], "no model version 'nope'"),
    (["models", "promote", "nope", "--model-dir", "{dir}"], "no model version 'nope'"),
    (["models", "delete", "../x", "--model-dir", "{dir}"], "not a model version id"),
    (["models", "promote", "--model-dir", "{dir}"], "Missing argument"),
    (["models", "frobnicate"], "No such command"),
])
def test_user_errors_are_one_line(args: list[str], fragment: str, registry: tuple[Path, str, str]) -> None:
    args = [a.replace("{dir}", str(registry[0])) for a in args]
    assert_user_error(run(*args), fragment)


def test_promoting_a_corrupted_version_is_refused(tmp_path: Path, registry: tuple[Path, str, str]) -> None:
    import shutil  # noqa: PLC0415

    model_dir = tmp_path / "copy"
    shutil.copytree(registry[0], model_dir)
    _, v1, v2 = registry
    (model_dir / "versions" / v2 / "features.json").write_text("{}")
    assert_user_error(run("models", "promote", v2, "--model-dir", str(model_dir)), "checksum mismatch")
    assert (model_dir / "CURRENT").read_text().strip() == v1


def test_train_warm_start_keeps_the_template_ids_of_the_previous_model(tmp_path: Path) -> None:
    from models.registry import ModelRegistry  # noqa: PLC0415
    from pipeline.stages.templates import TemplateMiner  # noqa: PLC0415

    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    first.write_bytes(b"".join(lines[: len(lines) // 2]))
    # The later half, with a word shifted in a third of the lines: their templates change, the others must not.
    second.write_bytes(b"".join(line.replace(b"Receiving", b"Fetching") if i % 3 == 0 else line
                                for i, line in enumerate(lines[len(lines) // 2:])))
    model_dir = tmp_path / "m"
    assert run("train", str(first), "--model-dir", str(model_dir), *HDFS_FLAGS, "--force").exit_code == 0
    registry = ModelRegistry(model_dir)
    v1 = registry.load()
    result = run("train", str(second), "--model-dir", str(model_dir), "--warm-start", "--force")  # settings: v1's
    assert result.exit_code == 0, result.output
    v2 = registry.load()
    assert v2.version != v1.version and v2.source["warm_start"] == v1.version
    assert v2.settings == v1.settings
    old, new = TemplateMiner.from_state(v1.miner_state), TemplateMiner.from_state(v2.miner_state)
    from pipeline.stages.decoding import Decoder  # noqa: PLC0415
    from tests.fakes import raw_line  # noqa: PLC0415

    decoder = Decoder(log_format=HDFS_FLAGS[1])
    known = 0
    for line in lines:
        message = decoder.decode(raw_line(line.rstrip(b"\n"))).message
        before = old.match(message)
        if before.known:
            known += 1
            assert new.match(message).template_id == before.template_id, message
    assert known > len(lines) // 2
    assert set(v1.features.vocabulary_) & set(v2.features.vocabulary_)


def test_warm_start_needs_a_current_model(tmp_path: Path) -> None:
    assert_user_error(run("train", str(SAMPLE), "--model-dir", str(tmp_path / "none"), *HDFS_FLAGS,
                          "--warm-start"), "--warm-start", "no current model")


@pytest.mark.parametrize("args", [
    ["models", "list", "--model-dir", "kafka:"],
    ["models", "list", "--model-dir", "kafka:models", "--bootstrap-servers", "127.0.0.1:1"],
])
def test_topic_registry_mistakes_are_one_line(args: list[str]) -> None:
    result = run(*args)
    assert_user_error(result)
    assert "kafka" in result.stderr.lower() or "topic" in result.stderr.lower()
