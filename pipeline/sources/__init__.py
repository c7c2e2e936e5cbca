"""Where raw lines come from: ``files`` (paths, stdin, gzip, a line-size cap), ``kafka`` (client settings,
topics, consumed records as raw lines), ``replay`` (files into a Kafka topic, keyed by entity), and training
input: ``kafka_range`` (a time range of a topic), ``es_range`` (an Elasticsearch index) and ``labels``.

May import: ``pipeline.records``, ``pipeline.errors``, ``pipeline.config`` and each other; never scoring,
stages or the worker's checkpoint and replay-state internals.
"""
