"""Everything a worker needs before its loop starts: options, model, clients, Elasticsearch layout.

Kept apart from :mod:`pipeline.stream.worker` so the loop module stays about the loop and the commit order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from models.artifacts import ModelBundle
from pipeline.config import PipelineSettings
from pipeline.errors import LogwardenError
from pipeline.records import TemplateMatch
from pipeline.scoring import Scorer
from pipeline.sinks.elasticsearch.bulk import ElasticsearchSink
from pipeline.sinks.elasticsearch.client import DEFAULT_ES_URL, describe_error, make_es_client
from pipeline.sinks.elasticsearch.layout import setup_indices
from pipeline.sources.kafka import StateTopic, client_config, ensure_topics, make_producer, partition_count
from pipeline.stages.templates import TemplateMiner
from pipeline.stream.dead_letters import DeadLetters, dlq_topic_for
from pipeline.stream.ledger import SavedState, parse_metadata, state_from_metadata
from pipeline.stream.metrics import WorkerMetrics
from pipeline.stream.output import AnomalyOutput

log = logging.getLogger(__name__)

INPUT_FORMATS = ("auto", "json", "text")


@dataclass
class WorkerOptions:
    """Resolved worker options (the CLI fills these from flags, the config file and the environment)."""

    bootstrap_servers: str
    topics: tuple[str, ...]
    group_id: str
    settings: PipelineSettings
    es_url: str = DEFAULT_ES_URL
    index_prefix: str = "logwarden"
    metrics_port: int | None = None
    exit_when_idle: float | None = None
    dlq_topic: str | None = None
    input_format: str = "auto"
    commit_interval: float = 5.0
    session_timeout: float = 10.0
    es_timeout: float = 10.0
    es_compat: str = "auto"
    es_setup: bool = True
    max_poll_records: int = 500
    client_id: str = "logwarden-worker"
    es_auth: dict[str, str] = field(default_factory=dict)

    def check(self) -> WorkerOptions:
        if not self.topics:
            raise LogwardenError("no topic to consume: give --topic (repeatable) or `topic:` in the config file")
        if not self.group_id:
            raise LogwardenError("--group-id must not be empty")
        if self.input_format not in INPUT_FORMATS:
            raise LogwardenError(f"--format must be one of {', '.join(INPUT_FORMATS)}, got {self.input_format!r}")
        if self.session_timeout < 6:
            raise LogwardenError("--session-timeout must be at least 6s (the broker's minimum)")
        return self


class WorkerContext:
    """Model, scorer, clients, sink and dead letters for one worker."""

    def __init__(self, options: WorkerOptions, bundle: ModelBundle, metrics: WorkerMetrics | None = None) -> None:
        self.options = options.check()
        self.bundle = bundle
        self.metrics = metrics or WorkerMetrics()
        self.metrics.set_model(bundle.version, bundle.created)
        try:
            miner = TemplateMiner.from_state(bundle.miner_state)
        except ValueError as exc:
            raise LogwardenError(f"model {bundle.version}: {exc}") from None
        self.tag: Callable[[str], TemplateMatch] = miner.match
        self.scorer = Scorer(bundle)
        auth: dict[str, Any] = dict(options.es_auth)
        es = make_es_client(options.es_url, timeout=options.es_timeout, max_retries=1, compat=options.es_compat,
                            **auth)
        self.sink = ElasticsearchSink(es, options.index_prefix, max_retries=1, request_timeout=options.es_timeout,
                                      owns_client=True)
        line_cap = int(options.settings.max_line_bytes)
        self.producer = make_producer(options.bootstrap_servers, max_request_size=max(1 << 20, line_cap + 65536))
        self.dead_letters = DeadLetters(self.producer, options.dlq_topic,
                                        on_sent=lambda reason: self.metrics.dead_letters.labels(reason).inc())
        self.output = AnomalyOutput(self.scorer, self.sink, self.dead_letters, self.metrics)

    def make_consumer(self) -> KafkaConsumer:
        opts = self.options
        session_ms = int(opts.session_timeout * 1000)
        config = client_config(
            opts.bootstrap_servers,
            group_id=opts.group_id,
            client_id=opts.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            max_poll_records=opts.max_poll_records,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(1000, session_ms // 3),
            max_poll_interval_ms=300_000,
        )
        try:
            return KafkaConsumer(**config)
        except KafkaError as exc:
            raise LogwardenError(f"cannot connect to Kafka at {opts.bootstrap_servers}: {exc}") from None

    def prepare_topics(self) -> None:
        """Warn about missing source topics; create the dead-letter topics that do not exist yet."""
        opts = self.options
        for topic in opts.topics:
            if partition_count(opts.bootstrap_servers, topic) is None:
                log.warning("topic %s does not exist (yet): the worker waits for it", topic)
        no_configs: dict[str, str] = {}
        wanted = {dlq_topic_for(topic, opts.dlq_topic): (1, no_configs) for topic in opts.topics}
        try:
            for name in ensure_topics(opts.bootstrap_servers, wanted):
                log.info("created dead-letter topic %s", name)
        except KafkaError as exc:
            log.warning("could not create dead-letter topics %s (%s); relying on broker auto-creation",
                        sorted(wanted), exc)

    def prepare_elasticsearch(self, should_stop: Callable[[], bool], max_backoff: float = 30.0) -> bool:
        """Create the index template/alias (idempotent); waits for Elasticsearch. False if stopped first."""
        if not self.options.es_setup:
            return True
        backoff = 1.0
        while not should_stop():
            try:
                done = setup_indices(self.sink.client, self.options.index_prefix)
                log.info("Elasticsearch layout ready: %s", done)
                return True
            except ApiError as exc:
                if exc.status_code in (400, 401, 403, 404):
                    raise LogwardenError(describe_error(exc, self.options.es_url)) from None
                problem = describe_error(exc, self.options.es_url)
            except TransportError as exc:
                problem = describe_error(exc, self.options.es_url)
            log.warning("waiting for Elasticsearch (%s); retrying in %.0f s", problem, backoff)
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline and not should_stop():
                time.sleep(0.2)
            backoff = min(backoff * 2, max_backoff)
        return False

    def close(self) -> None:
        try:
            self.producer.close(timeout=10)
        except KafkaError as exc:
            log.warning("closing the producer: %s", exc)
        self.sink.close()


def load_start(
    consumer: KafkaConsumer, tp: TopicPartition, state_topic: StateTopic
) -> tuple[int | None, SavedState | None]:
    """Committed offset of ``tp`` and the replay state saved with it; seeks the consumer there."""
    committed: Any = consumer.committed(tp, metadata=True)
    if committed is None or committed.offset is None or committed.offset < 0:
        return None, None
    offset = int(committed.offset)
    data = parse_metadata(committed.metadata)
    state: SavedState | None = None
    if data is not None and "state" in data:
        state = state_from_metadata(data, offset)
    elif data is not None and "ref" in data and data.get("o") == offset:
        state = state_topic.read(tp, tuple(data["ref"]))  # type: ignore[arg-type]
        if state is not None and state.offset != offset:
            log.warning("ignoring replay state of %s/%d: it is for offset %d, not %d", tp.topic, tp.partition,
                        state.offset, offset)
            state = None
    elif data is None and committed.metadata:
        log.info("%s/%d: commit metadata is not Logwarden's; rebuilding windows without replay state",
                 tp.topic, tp.partition)
    consumer.seek(tp, offset)
    log.info("%s/%d: starting at committed offset %d (%s)", tp.topic, tp.partition, offset,
             f"replay state: {len(state.skip)} entities" if state is not None else "no replay state")
    return offset, state
