"""Where results go: ``report`` (JSON lines, the terminal table, the HTML report), the search sinks
``elasticsearch/`` and ``opensearch/`` (client, index layout, bulk sink each; the template catalog is
Elasticsearch's), what those two share: ``anomaly_index`` (mappings, names, template bodies) and ``bulk``
(the buffer, the delivery contract and the sorting of per-item bulk results into indexed / rejected / retry
later), and ``kibana`` (saved objects and their import).

Sinks receive finished documents (a :class:`pipeline.records.Document` carries its ``_id``); they never
import scoring or the worker. May import: ``pipeline.records``, ``pipeline.errors``, ``pipeline.config``.
"""
