"""The streaming worker: Kafka in, the shared record chain per partition, anomalies into Elasticsearch.

``worker`` (the loop and the rebalance listener), ``partition`` (one partition: chain + ledger), ``checkpoint``
(the one ``Checkpoint.commit``: flush sink, flush dead letters, save replay state, commit offsets),
``ledger`` (which offset is safe, the replay state), ``state_topic`` (large replay states, reading a start
back), ``output`` (score windows into the sink, outages), ``dead_letters``, ``backoff``, ``metrics``,
``health``, ``context`` (model, clients and sink built before the loop), ``reload`` (hot model reload: watch,
verify, swap between batches) and ``model_topic`` (the model registry in a compacted Kafka topic).

May import: ``models``, ``pipeline.scoring``, ``stages``, ``sources``, ``sinks`` and the foundation modules;
never ``cli``.
"""
