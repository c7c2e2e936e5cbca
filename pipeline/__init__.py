"""Logwarden's runtime: what turns log lines into scored, explained anomaly documents.

Layout, one hop from each folder name to its code (``docs/architecture.md`` walks a record through it):

* ``records``, ``errors``, ``config``: the data contracts, user-facing errors, settings and option resolution;
  everything may import these, they import nothing of the project but each other.
* ``stages/``: decode, time, mask, template, entity, window, and ``chain`` (the one per-record chain).
* ``sources/``: files and stdin, Kafka clients, ``replay``.  ``sinks/``: JSON lines and the report,
  Elasticsearch.  Neither knows scoring or the worker's checkpoints.
* ``scoring``: a closed window becomes a scored, explained document (uses ``models``).
* ``embedded``: detect / parse (and in-memory train) over files.  ``training``: bounded-memory training from
  any source.  ``stream/``: the Kafka worker, its hot model reload and the Kafka-topic model registry.
* ``cli/``: the ``logwarden`` command, on top of everything.

Dependency direction: ``cli`` -> ``training`` -> ``embedded`` / ``stream`` -> ``scoring`` -> ``models``;
``models`` never imports ``pipeline`` (checked by ``tests/test_architecture.py``).
"""
