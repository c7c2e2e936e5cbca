"""Training from a Kafka time range (and an Elasticsearch index) gives the model training from a file gives.

Same vocabulary, same template and window counts as ``logwarden train FILE`` on the same lines. The Kafka range
is cut by time: half the sample is produced, a moment is noted, the other half is produced, and
``--since`` that moment must read exactly the second half (``offsets_for_times``), from a 4-partition topic
keyed by entity, without committing for any consumer group.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from models.registry import ModelRegistry
from tests.integration.worker_support import ENTITY_REGEX, HDFS_FORMAT, SAMPLE, cli, replay_now

pytestmark = pytest.mark.integration
FLAGS = ["--log-format", HDFS_FORMAT, "--entity-regex", ENTITY_REGEX, "--force"]


def train(model_dir: Path, *args: str) -> dict:
    cli("train", *args, "--model-dir", str(model_dir), *FLAGS)
    bundle = ModelRegistry(model_dir).load()
    return {"vocabulary": bundle.features.vocabulary_, "windows": bundle.stats["windows"],
            "templates": bundle.stats["templates"], "lines": bundle.stats["lines"], "source": bundle.source,
            "stats": bundle.stats}


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_kafka_time_range_trains_the_model_its_lines_train_from_a_file(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_admin: KafkaAdminClient, tmp_path: Path,
) -> None:
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    first.write_bytes(b"".join(lines[: len(lines) // 2]))
    second.write_bytes(b"".join(lines[len(lines) // 2:]))
    topic = kafka_topic_factory(partitions=4)
    replay_now(first, topic, kafka_bootstrap)
    time.sleep(1.5)
    middle = time.time()
    time.sleep(1.5)
    replay_now(second, topic, kafka_bootstrap)

    from_file = train(tmp_path / "file", str(second))
    from_kafka = train(tmp_path / "kafka", "--source", f"kafka:{topic}", "--bootstrap-servers", kafka_bootstrap,
                       "--since", iso(middle), "--until", "now")
    assert from_kafka["lines"] == from_file["lines"] == len(lines) - len(lines) // 2
    assert from_kafka["windows"] == from_file["windows"] and from_kafka["templates"] == from_file["templates"]
    assert from_kafka["vocabulary"] == from_file["vocabulary"]
    assert from_kafka["source"]["kind"] == "kafka" and from_kafka["source"]["name"] == topic
    assert from_kafka["source"]["since"] and from_kafka["source"]["until"]
    assert from_kafka["stats"]["kafka"]["outside_range"] == 0

    whole_file = train(tmp_path / "whole-file", str(SAMPLE))
    whole_kafka = train(tmp_path / "whole-kafka", "--source", f"kafka:{topic}", "--bootstrap-servers",
                        kafka_bootstrap, "--since", "1h")
    assert whole_kafka["lines"] == whole_file["lines"] == len(lines)
    assert whole_kafka["windows"] == whole_file["windows"] and whole_kafka["vocabulary"] == whole_file["vocabulary"]

    # Manual assignment, no group: no consumer group holds an offset of the topic.
    for group in kafka_admin.list_groups():
        offsets = kafka_admin.list_group_offsets({group["group_id"]: None}).get(group["group_id"], {})
        assert not [tp for tp in offsets if tp.topic == topic], group


def _index_sample(es_client, index: str, lines: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    from elasticsearch.helpers import bulk  # noqa: PLC0415

    es_client.indices.create(index=index, settings={"number_of_shards": 1, "number_of_replicas": 0},
                             mappings={"properties": {"@timestamp": {"type": "date"}, "message": {"type": "text"},
                                                      "line": {"type": "long"}}})
    docs = ({"_index": index, "_source": {
        "@timestamp": datetime.strptime(line[:13].decode(), "%y%m%d %H%M%S").replace(tzinfo=UTC).isoformat(),
        "message": line.rstrip(b"\n").decode(), "line": n}} for n, line in enumerate(lines))
    bulk(es_client, docs, chunk_size=2000, refresh="wait_for")


@pytest.mark.parametrize("es_url", ["es9", "es8"], indirect=True)
def test_an_elasticsearch_index_trains_the_model_its_lines_train_from_a_file(
    es_url: str, es_client, es_index: str, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    _index_sample(es_client, es_index, lines)
    from_file = train(tmp_path / "file", str(SAMPLE))
    from_es = train(tmp_path / "es", "--source", f"es:{es_index}", "--es-url", es_url,
                    "--since", "2008-11-09T00:00:00Z", "--until", "2008-11-12T00:00:00Z")
    assert from_es["lines"] == from_file["lines"] == len(lines)
    assert from_es["windows"] == from_file["windows"] and from_es["templates"] == from_file["templates"]
    assert from_es["vocabulary"] == from_file["vocabulary"]
    assert from_es["source"]["kind"] == "elasticsearch" and from_es["stats"]["elasticsearch"]["hits"] == len(lines)

    # A time range and a query cut the same lines a file would hold.
    cut = datetime(2008, 11, 9, 20, 40, 0, tzinfo=UTC)
    later = [line for line in lines if datetime.strptime(line[:13].decode(), "%y%m%d %H%M%S").replace(
        tzinfo=UTC) >= cut and b"INFO" in line]
    (tmp_path / "later.log").write_bytes(b"".join(later))
    later_file = train(tmp_path / "later-file", str(tmp_path / "later.log"))
    later_es = train(tmp_path / "later-es", "--source", f"es:{es_index}", "--es-url", es_url,
                     "--since", cut.isoformat(), "--query", "message:INFO")
    assert later_es["lines"] == later_file["lines"] == len(later)
    assert later_es["windows"] == later_file["windows"] and later_es["vocabulary"] == later_file["vocabulary"]
