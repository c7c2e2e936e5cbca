"""The per-record stages and the one chain that runs them (``chain.RecordChain``).

assemble (``assembly``: container partial lines; ``multiline``: stack traces) -> decode (``decoding``, ``layouts``,
``jsonlog``, ``timestamps`` with ``time_layouts``; ``presets``, ``formats``, ``loghub_layouts`` for known shapes) ->
mask and template (``masking``, ``templates``; ``memo``: their bounded memos) -> entity (``entities``) -> window
(``windows``).
``chain`` strings them together for one stream; ``detect`` and every partition of the worker use it, so they
find the same windows.

May import: ``pipeline.records``, ``pipeline.errors``, ``pipeline.config`` and each other; nothing about
sources, sinks, scoring or the worker.
"""
