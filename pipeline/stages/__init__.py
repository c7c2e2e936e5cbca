"""The per-record stages and the one chain that runs them (``chain.RecordChain``).

decode (``decoding``, ``layouts``, ``jsonlog``, ``timestamps``) -> mask and template (``masking``, ``templates``) ->
entity (``entities``) -> window (``windows``). ``chain`` strings them together for one stream; ``detect`` and
every partition of the worker use it, so they find the same windows.

May import: ``pipeline.records``, ``pipeline.errors``, ``pipeline.config`` and each other; nothing about
sources, sinks, scoring or the worker.
"""
