"""Everything a worker needs before its loop starts: model, scorer, clients, sink, index layout.

Kept apart from :mod:`pipeline.stream.worker` so the loop module stays about the loop. Options are resolved
by the CLI into a :class:`pipeline.config.WorkerOptions`. The sink is Elasticsearch's or OpenSearch's
(``options.sink``, :func:`make_sink`); everything after it only sees :class:`pipeline.sinks.bulk.BulkSink`.
OpenSearch's client (an optional extra) is imported only when that sink is chosen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import KafkaError

from models.artifacts import ModelBundle
from pipeline.config import WorkerOptions
from pipeline.errors import LogwardenError
from pipeline.records import TemplateMatch
from pipeline.scoring import Scorer
from pipeline.sinks.bulk import BulkSink, SinkUnavailable
from pipeline.sinks.elasticsearch.bulk import ElasticsearchSink
from pipeline.sinks.elasticsearch.catalog import CatalogFlusher, TemplateCatalog
from pipeline.sources.kafka import client_config, ensure_topics, make_producer, partition_count
from pipeline.stages.templates import TemplateMiner
from pipeline.stream.backoff import Backoff
from pipeline.stream.dead_letters import DeadLetters, dlq_topic_for
from pipeline.stream.metrics import WorkerMetrics
from pipeline.stream.output import AnomalyOutput
from pipeline.stream.reload import Prepared, SwitchableTag

log = logging.getLogger(__name__)


def make_sink(options: WorkerOptions) -> BulkSink:
    """The worker's sink for ``options.sink``, owning a client built from the ``--es-*`` options."""
    auth: dict[str, Any] = dict(options.es_auth)
    if options.sink == "opensearch":
        from pipeline.sinks.opensearch.bulk import OpenSearchSink  # noqa: PLC0415 - an optional extra
        from pipeline.sinks.opensearch.client import make_os_client  # noqa: PLC0415

        client = make_os_client(options.es_url, timeout=options.es_timeout, max_retries=1,
                                insecure_skip_verify=options.es_insecure_skip_verify, **auth)
        return OpenSearchSink(client, options.index_prefix, max_retries=1, request_timeout=options.es_timeout,
                              owns_client=True)
    from pipeline.sinks.elasticsearch.bulk import ElasticsearchSink  # noqa: PLC0415
    from pipeline.sinks.elasticsearch.client import make_es_client  # noqa: PLC0415

    es = make_es_client(options.es_url, timeout=options.es_timeout, max_retries=1, compat=options.es_compat,
                        insecure_skip_verify=options.es_insecure_skip_verify, **auth)
    return ElasticsearchSink(es, options.index_prefix, max_retries=1, request_timeout=options.es_timeout,
                             owns_client=True)


def consumer_config(opts: WorkerOptions) -> dict[str, Any]:
    """The worker's kafka-python consumer settings (also what :mod:`benchmarks.stream_throughput` reads with)."""
    session_ms = int(opts.session_timeout * 1000)
    return client_config(
        opts.bootstrap_servers,
        group_id=opts.group_id,
        client_id=opts.client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        allow_auto_create_topics=False,
        max_poll_records=opts.max_poll_records,
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(1000, session_ms // 3),
        max_poll_interval_ms=int(opts.max_poll_interval * 1000),
        # Incremental cooperative rebalancing (KIP-429): a joining or leaving worker moves only the
        # partitions that change owner; the others keep being consumed through the rebalance.
        partition_assignment_strategy=(CooperativeStickyAssignor,),
    )


class WorkerContext:
    """Model, scorer, clients, sink and dead letters for one worker."""

    # The registry's current version when it failed to load at start and another one serves (refuse_current).
    refused_version: str | None = None

    def __init__(self, options: WorkerOptions, bundle: ModelBundle, metrics: WorkerMetrics | None = None) -> None:
        self.options = options.check()
        self.bundle = bundle
        self.metrics = metrics or WorkerMetrics()
        self.metrics.set_model(bundle.version, bundle.created)
        self.metrics.expect_topics(self.options.topics)
        try:
            miner = TemplateMiner.from_state(bundle.miner_state)
        except ValueError as exc:
            raise LogwardenError(f"model {bundle.version}: {exc}") from None
        # Every partition's chain calls this one object; a hot reload points it at the new miner.
        self.tag: Callable[[str], TemplateMatch] = SwitchableTag(miner.match)
        self.scorer = Scorer(bundle)
        self.sink = make_sink(options)
        line_cap = int(options.settings.max_line_bytes)
        self.producer = make_producer(options.bootstrap_servers, max_request_size=max(1 << 20, line_cap + 65536))
        self.dead_letters = DeadLetters(self.producer, options.dlq_topic,
                                        on_sent=lambda reason: self.metrics.dead_letters.labels(reason).inc())
        self.output = AnomalyOutput(self.scorer, self.sink, self.dead_letters, self.metrics,
                                    flush_budget=options.es_timeout)
        # Templates seen, for <prefix>-templates: recorded as records are tagged, written from a thread.
        self.catalog: TemplateCatalog | None = None
        self.catalog_flusher: CatalogFlusher | None = None
        if options.template_catalog_interval > 0 and isinstance(self.sink, ElasticsearchSink):
            self.catalog = TemplateCatalog(self.sink.client, options.index_prefix, bundle.version,
                                           on_dropped=self.metrics.template_catalog_dropped.inc)
            self.tag = self.catalog.observing(self.tag)
        elif options.template_catalog_interval > 0:
            log.info("the template catalog is written to Elasticsearch only; not with --sink %s", options.sink)

    def refuse_current(self, version: str, reason: str) -> None:
        """The registry's current ``version`` could not be loaded at start (another one serves): counted like a
        refused reload, and the model watcher does not try it again until the pointer moves."""
        self.refused_version = version
        self.metrics.model_reloads_refused.labels(reason).inc()

    def use_model(self, prepared: Prepared) -> None:
        """Serve ``prepared`` from now on (called by the loop between batches, never mid-batch)."""
        old = self.bundle.version
        self.bundle = prepared.bundle
        self.scorer = prepared.scorer
        self.output.scorer = prepared.scorer
        if isinstance(self.tag, SwitchableTag):
            self.tag.target = prepared.tag
        self.metrics.set_model(prepared.bundle.version, prepared.bundle.created)
        self.metrics.model_reloads.inc()
        log.info("model %s now serving (was %s); windows scored from now on carry it", prepared.bundle.version, old)

    def make_consumer(self) -> KafkaConsumer:
        opts = self.options
        try:
            return KafkaConsumer(**consumer_config(opts))
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
        """Create the index template/alias (idempotent); waits for the sink's server. False if stopped first.

        (Named for the default sink; the OpenSearch sink sets up the same layout.)
        """
        backoff = Backoff(1.0, max_backoff)
        server, url = self.sink.server, self.options.es_url
        while not should_stop():
            try:
                if isinstance(self.sink, ElasticsearchSink):
                    # A role without what the worker needs stops it here, not at the first anomaly. With
                    # --no-es-setup the worker never waited for the server before its loop, and still does not.
                    try:
                        self.sink.check_privileges(setup=self.options.es_setup, catalog=self.catalog is not None)
                    except SinkUnavailable:
                        if self.options.es_setup:
                            raise
                if not self.options.es_setup:
                    self.start_catalog()
                    return True
                if isinstance(self.sink, ElasticsearchSink):
                    done = self.sink.setup_layout(catalog=self.catalog is not None)
                else:
                    done = self.sink.setup_layout()
                log.info("%s layout ready: %s", server, done)
                self.start_catalog()
                return True
            except SinkUnavailable as exc:
                problem = str(exc)
            except LogwardenError as exc:
                raise LogwardenError(f"{exc} ({server} at {url})") from None
            log.warning("waiting for %s at %s (%s); retrying in %.0f s", server, url, problem, backoff.failed())
            if not backoff.wait(should_stop):
                break
        return False

    def start_catalog(self) -> None:
        if self.catalog is not None and self.catalog_flusher is None:
            self.catalog_flusher = CatalogFlusher(self.catalog, self.options.template_catalog_interval)

    def close(self) -> None:
        if self.catalog_flusher is not None:
            self.catalog_flusher.close(timeout=self.options.es_timeout)
        try:
            self.producer.close(timeout=10)
        except KafkaError as exc:
            log.warning("closing the producer: %s", exc)
        self.sink.close()
