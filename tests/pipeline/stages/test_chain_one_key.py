"""The chain's one-entity shortcut (taken with or without replay bookkeeping) against its general loop.

``General`` is the same chain with the shortcut switched off (``_one_key`` False), so every record goes through
the loop over its entities that every record of a worker took before. Random streams of JSON records with zero,
one or two entities, timed, untimed, late, implausible, not JSON, invalid UTF-8 or 64 KiB long, through session
and tumbling windowers that track offsets, with a replay hook that skips random (entity, offset) parts, must give
the same steps, the same hook calls, the same windows (offsets included), watermark, clock and stats.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.config import PipelineSettings
from pipeline.records import RawLine, TemplateMatch, Window
from pipeline.stages.chain import RecordChain, Step
from pipeline.stages.windows import EntityKey
from pipeline.stream.ledger import PartitionLedger, SavedState

SESSION = PipelineSettings(entity_regex=r"host (?P<host>\w+)", window="session", session_gap=10.0,
                           max_session=40.0, allowed_lateness=3.0)
TUMBLING = SESSION.merged({"window": "tumbling", "window_size": "15s"})
BASE = 1_700_000_000.0


class General(RecordChain):
    _one_key = False


def tag(message: str) -> TemplateMatch:
    verb = message.split()[-1]
    return TemplateMatch(f"T{verb}", f"host <*> did {verb}", verb != "crash")


class Hook:
    """A replay hook that logs every call and skips the (entity, offset) parts it was given."""

    def __init__(self, skip: set[tuple[str, int]]) -> None:
        self.skip = skip
        self.calls: list[tuple[Any, ...]] = []

    def before(self, offset: int, watermark: float, clock: float | None) -> None:
        self.calls.append(("before", offset, watermark, clock))

    def should_skip(self, key: EntityKey, offset: int) -> bool:
        self.calls.append(("skip?", key, offset))
        return (key[1], offset) in self.skip

    def done(self, offset: int) -> None:
        self.calls.append(("done", offset))


def record(kind: str, hosts: tuple[str, ...], ts: float, verb: str) -> bytes:
    if kind == "text":
        return b"not json at all"
    if kind == "badutf8":  # invalid UTF-8 and a lone surrogate's bytes inside the message
        return json.dumps({"message": " ".join(f"host {h}" for h in hosts) + " did ", "@timestamp": BASE + ts}
                          ).encode()[:-1] + b', "x": "\xff\xed\xa0\x80"}'
    if kind == "huge":  # a 64 KiB message (the entity at its start)
        return json.dumps({"message": " and ".join(f"host {h}" for h in hosts) + f" did {verb} " + "x" * 65536,
                           "@timestamp": BASE + ts}).encode()
    message = " and ".join(f"host {h}" for h in hosts) + f" did {verb}" if hosts else f"nobody did {verb}"
    doc: dict[str, Any] = {"message": message}
    if kind == "timed":
        doc["@timestamp"] = BASE + ts
    elif kind == "future":
        doc["@timestamp"] = "2199-01-01T00:00:00Z"
    return json.dumps(doc).encode()


records = st.tuples(
    st.sampled_from(["timed"] * 6 + ["untimed", "future", "text", "badutf8", "huge"]),
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=2).map(tuple),
    st.floats(0, 120).map(lambda x: round(x, 1)),
    st.sampled_from(["login", "read", "crash"]),
)


def window(w: Window) -> dict[str, Any]:
    out = asdict(w)
    out["offsets"] = None if w.offsets is None else list(w.offsets)
    return out


def step(s: Step) -> tuple[Any, ...]:
    r = s.record
    return (r.message, r.timestamp, r.fields, r.flags, [window(w) for w in s.closed], s.windowed, s.skipped,
            s.no_entity)


def run(chain: RecordChain, lines: list[bytes], idle: bool) -> list[Any]:
    out: list[Any] = []
    for offset, data in enumerate(lines):
        out.append(step(chain.add(RawLine(data, "logs/0", offset, None, BASE + 1000.0), float(offset))))
        if idle and offset % 7 == 6:
            out.append([window(w) for w in chain.close_idle(float(offset), 3.0)])
    out.append((chain.windower.watermark, chain.last_time, dict(chain.clock._last), vars(chain.windower.stats),
                vars(chain.decoder.stats), chain.late_records))
    out.append([window(w) for w in chain.flush()])
    return out


def both(settings_: PipelineSettings, lines: list[bytes], skip: set[tuple[str, int]] | None, idle: bool,
         watermark: float | None = None, clock: float | None = None) -> tuple[list[Any], list[Any]]:
    results = []
    for cls in (RecordChain, General):
        hook = Hook(skip) if skip is not None else None
        chain = cls(settings_, tag, json_mode="strict", replay=hook, track_offsets=True, origin="logs/0",
                    watermark=watermark, clock=clock)
        results.append(run(chain, lines, idle) + [hook.calls if hook is not None else None])
    return results[0], results[1]


@settings(max_examples=400, deadline=None)
@given(stream=st.lists(records, max_size=40), skipped=st.sets(st.integers(0, 40)), tumbling=st.booleans(),
       replay=st.booleans(), idle=st.booleans())
@example(stream=[("timed", ("a",), 0.0, "login"), ("timed", ("a",), 1.0, "read"), ("timed", ("b",), 30.0, "read")],
         skipped={2}, tumbling=False, replay=True, idle=False)  # a skipped part still closes what it passes
def test_one_key_shortcut_equals_the_general_loop(stream: list[tuple[str, tuple[str, ...], float, str]],
                                                  skipped: set[int], tumbling: bool, replay: bool,
                                                  idle: bool) -> None:
    lines = [record(*r) for r in stream]
    # the parts a replay skips: those of the chosen offsets (the first entity only, for two-entity records)
    skip = {(r[1][0], i) for i, r in enumerate(stream) if i in skipped and r[1]}
    fast, general = both(TUMBLING if tumbling else SESSION, lines, skip if replay else None, idle)
    assert fast == general


@settings(max_examples=100, deadline=None)
@given(stream=st.lists(records, min_size=1, max_size=30), data=st.data())
def test_a_resumed_partition_with_a_ledger_replays_the_same_through_both(
        stream: list[tuple[str, tuple[str, ...], float, str]], data: st.DataObject) -> None:
    """The worker's own hook: a ledger restored from a saved state that skips parts of the first records."""
    lines = [record(*r) for r in stream]
    skip = data.draw(st.dictionaries(st.sampled_from([("host", h) for h in "abc"]), st.integers(-1, len(lines))))
    extra = data.draw(st.dictionaries(st.sampled_from([("host", h) for h in "abc"]),
                                      st.lists(st.integers(0, len(lines)), max_size=3).map(lambda x: tuple(sorted(x)))))
    state = SavedState(0, BASE + 2.0, BASE + 4.0, skip, extra)
    results = []
    for cls in (RecordChain, General):
        ledger = PartitionLedger("logs/0", 0, state)
        chain = cls(SESSION, tag, json_mode="strict", replay=ledger, track_offsets=True, origin="logs/0",
                    watermark=state.watermark, clock=state.clock)
        out = run(chain, lines, idle=False)
        out.append((ledger.next_offset, list(ledger._at), list(ledger._wm), list(ledger._clk)))
        results.append(out)
    assert results[0] == results[1]


def test_the_shortcut_is_on_and_hears_the_hook_as_the_loop_does() -> None:
    assert RecordChain._one_key and not General._one_key
    hook = Hook(set())
    chain = RecordChain(SESSION, tag, json_mode="strict", replay=hook, track_offsets=True, origin="logs/0")
    lines = [record("timed", ("a",), 0.0, "login"), record("timed", ("b",), 30.0, "read")]
    steps = [chain.add(RawLine(data, "logs/0", i, None, BASE + 1000.0)) for i, data in enumerate(lines)]
    assert [len(s.closed) for s in steps] == [0, 1] and steps[1].closed[0].stream == "logs/0"
    assert list(steps[1].closed[0].offsets or ()) == [0]
    assert [c[0] for c in hook.calls] == ["before", "skip?", "done", "before", "skip?", "done"]
