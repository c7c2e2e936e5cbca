"""OpenSearch as a sink, behind the same interface as ``elasticsearch/``: ``client`` (one way to build an
opensearch-py client, the missing-extra hint, error descriptions), ``layout`` (the shared index template,
daily indices and alias; ISM instead of ILM) and ``bulk`` (:class:`~pipeline.sinks.bulk.BulkSink` over
opensearch-py). opensearch-py is the optional extra ``logwarden[opensearch]``, imported only when used.

May import: ``pipeline.records``, ``pipeline.errors``, ``pipeline.config``, ``pipeline.sinks`` and each other.
"""
