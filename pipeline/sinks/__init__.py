"""Where results go: ``report`` (JSON lines, the terminal table, the HTML report), ``elasticsearch/``
(client, index layout, bulk sink) and ``kibana`` (saved objects and their import).

Sinks receive finished documents (a :class:`pipeline.records.Document` carries its ``_id``); they never
import scoring or the worker. May import: ``pipeline.records``, ``pipeline.errors``, ``pipeline.config``.
"""
