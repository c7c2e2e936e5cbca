"""Elasticsearch as a sink: ``client`` (one way to build a client and describe its errors), ``layout``
(index template, daily indices, alias, ILM; which index a document goes to) and ``bulk`` (buffer and
bulk-index documents; sort failures into retry, reject and fail).

May import: ``pipeline.records``, ``pipeline.errors``, ``pipeline.config`` and each other.
"""
