"""The ``logwarden`` command line: ``app`` (the main group, ``main``), ``common`` (one-line user errors,
option groups, the resolver glue, progress bars), ``files`` (detect, parse), ``train``, ``evaluate``, ``models``
(the registry commands), ``stream`` (worker, replay) and ``es`` (es-setup). ``python -m pipeline.cli`` runs it
without the installed script.

The top of the dependency graph: may import anything in ``pipeline`` and ``models``; nothing imports it.
"""
