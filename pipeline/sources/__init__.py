"""Where raw lines come from: ``files`` (paths, stdin, gzip, a line-size cap), ``kafka`` (client settings,
topics, consumed records as raw lines) and ``replay`` (files into a Kafka topic, keyed by entity).

May import: ``pipeline.records``, ``pipeline.errors``, ``pipeline.config`` and each other; never scoring,
stages or the worker's checkpoint and replay-state internals.
"""
