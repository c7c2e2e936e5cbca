"""The template catalog's merge rules, its bounded batches, and that a failed flush loses no observation."""

from __future__ import annotations

import pytest
from elastic_transport import ConnectionError as EsConnectionError

from pipeline.records import TemplateMatch
from pipeline.sinks.elasticsearch.catalog import Seen, TemplateCatalog, merged
from tests.fakes import FakeElasticsearch

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def test_merge_adds_counts_widens_the_seen_range_and_adds_the_version_only_when_known() -> None:
    first = merged(None, "T1", Seen("a <*>", 3, T0 + 10, T0 + 20, True), "v1", T0 + 30)
    assert first == {"template_id": "T1", "template": "a <*>", "count": 3, "first_seen": "2023-11-14T22:13:30.000Z",
                     "last_seen": "2023-11-14T22:13:40.000Z", "model_versions": ["v1"], "known": True,
                     "updated": "2023-11-14T22:13:50.000Z"}
    second = merged(first, "T1", Seen("a <*>", 2, T0, T0 + 15, False), "v2", T0 + 40)
    assert second["count"] == 5
    assert second["first_seen"] == "2023-11-14T22:13:20.000Z" and second["last_seen"] == first["last_seen"]
    assert second["model_versions"] == ["v1"] and second["known"] is False
    # train's "no longer known": no text, no lines, keeps what the document had.
    third = merged(second, "T1", Seen("", known=False), None, T0 + 50)
    assert third["template"] == "a <*>" and third["count"] == 5 and third["first_seen"] == second["first_seen"]


def test_seen_add_keeps_the_extremes() -> None:
    seen = Seen("x", 1, T0 + 5, T0 + 5, True)
    seen.add(Seen("x", 2, T0, T0 + 9, None))
    assert (seen.count, seen.first, seen.last, seen.known) == (3, T0, T0 + 9, True)
    empty = Seen("x")
    empty.add(Seen("", 0, None, None, False))
    assert (empty.first, empty.last, empty.known, empty.template) == (None, None, False, "x")


def test_observing_records_every_match_once_per_template() -> None:
    clock = iter([T0, T0 + 1, T0 + 2])
    catalog = TemplateCatalog(FakeElasticsearch().client(), "lw", "v1", clock=lambda: next(clock))
    matches = {"a": TemplateMatch("Ta", "a"), "b": TemplateMatch("Tb", "b", known=False)}
    tag = catalog.observing(lambda message: matches[message])
    assert [tag(m).template_id for m in ("a", "b", "a")] == ["Ta", "Tb", "Ta"]
    assert catalog.pending == 2
    assert catalog._pending["Ta"] == Seen("a", 2, T0, T0 + 2, True)
    assert catalog._pending["Tb"] == Seen("b", 1, T0 + 1, T0 + 1, False)


def test_a_failed_flush_keeps_its_observations_merged_with_newer_ones() -> None:
    fake = FakeElasticsearch()
    catalog = TemplateCatalog(fake.client(), "lw", "v1", clock=lambda: T0)
    for n in range(7):
        catalog.observe(TemplateMatch(f"T{n}", f"t{n}"))
    fake.down = True
    with pytest.raises(EsConnectionError):
        catalog.flush(max_batch=5)
    catalog.observe(TemplateMatch("T0", "t0"))
    assert catalog.pending == 7 and catalog._pending["T0"].count == 2
    assert [m for m, path in fake.requests if path.endswith("_mget")] == ["POST"]  # one bounded batch was tried


def test_pending_observations_are_bounded_and_what_is_left_out_is_counted() -> None:
    """A stream of high-cardinality junk (a new template id per line) must not grow the catalog's memory: ids the
    model does not know wait for a flush only while there is room; the others are counted as dropped. Known
    templates are always kept (the model's vocabulary bounds them) and the most-seen are written first."""
    catalog = TemplateCatalog(FakeElasticsearch().client(), "lw", "v1", clock=lambda: T0, max_pending=100,
                              max_pending_chars=10_000)
    for n in range(1_000):
        catalog.observe(TemplateMatch(f"Tj{n}", f"junk {n} " + "x" * 20, known=False))
    assert catalog.pending <= 100
    assert catalog.dropped == 1_000 - catalog.pending
    big = TemplateCatalog(FakeElasticsearch().client(), "lw", "v1", clock=lambda: T0, max_pending=100,
                          max_pending_chars=10_000)
    for n in range(50):
        big.observe(TemplateMatch(f"Tb{n}", "y" * 1_000, known=False))
    assert big.pending <= 10 and big.dropped == 50 - big.pending  # the character budget holds too
    for n in range(300):
        catalog.observe(TemplateMatch(f"Tk{n}", f"known {n}"))
    assert all(f"Tk{n}" in catalog._pending for n in range(300))
    catalog.observe(TemplateMatch("Tj0", "junk 0", known=False))  # already pending: still counted
    assert catalog._pending["Tj0"].count == 2


def test_a_flush_writes_the_most_seen_templates_first_and_frees_their_room() -> None:
    catalog = TemplateCatalog(FakeElasticsearch().client(), "lw", "v1", clock=lambda: T0, max_pending=10)
    written: list[set[str]] = []

    def upsert(batch: dict[str, Seen], version: str | None) -> dict[str, Seen]:
        written.append(set(batch))
        return {}

    catalog.upsert = upsert  # type: ignore[method-assign]
    for n in range(10):
        for _ in range(n + 1):
            catalog.observe(TemplateMatch(f"T{n}", f"t{n}", known=False))
    assert catalog.flush(max_batch=3) == 3
    assert written == [{"T9", "T8", "T7"}]
    assert set(catalog._pending) == {f"T{n}" for n in range(7)}
    for n in range(10, 20):
        catalog.observe(TemplateMatch(f"T{n}", f"t{n}", known=False))
    assert catalog.pending == 10 and catalog.dropped == 7  # the three freed places were taken again


def test_a_template_that_becomes_known_keeps_the_accounting_exact() -> None:
    """A model reload can make a pending unknown id known: its place must still be given back when written."""
    catalog = TemplateCatalog(FakeElasticsearch().client(), "lw", "v1", clock=lambda: T0, max_pending=2)
    catalog.upsert = lambda batch, version: {}  # type: ignore[method-assign]
    for _ in range(3):
        catalog.observe(TemplateMatch("Ta", "a", known=False))
        catalog.observe(TemplateMatch("Ta", "a", known=True))
        catalog.observe(TemplateMatch("Tb", "b", known=False))
        catalog.flush()
    catalog.observe(TemplateMatch("Tc", "c", known=False))
    catalog.observe(TemplateMatch("Td", "d", known=False))
    assert catalog.pending == 2 and catalog.dropped == 0
