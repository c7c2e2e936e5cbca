"""``RecordChain.windows_of``'s fused loop (file jobs: no replay, no stream name) against the loop it replaces.

The reference is the loop ``pipeline.embedded.windowed`` ran before: :meth:`RecordChain.add` per line, its
:class:`Step` read for the counts. Random streams of JSON and text records with zero, one or two entities, timed,
untimed, late, implausible, with a preset-made template, not JSON (strict), invalid UTF-8, and records whose
tagging raises (errors are data), through session and tumbling windowers: the same windows in the same batches,
the same counts (also where the check at a line count is made, and when it raises), watermark, clock and stats.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.config import PipelineSettings
from pipeline.records import RawLine, TemplateMatch, Window
from pipeline.stages.chain import NOT_WINDOWED, RecordChain

SESSION = PipelineSettings(entity_regex=r"host (?P<host>\w+)", window="session", session_gap=10.0,
                           max_session=40.0, allowed_lateness=3.0)
TUMBLING = SESSION.merged({"window": "tumbling", "window_size": "15s"})
FIELD = SESSION.merged({"entity_regex": None, "entity_field": "host.name"})
BASE = 1_700_000_000.0


class Counts:
    def __init__(self) -> None:
        self.lines = self.untimed = self.no_entity = 0

    def snapshot(self) -> tuple[int, int, int]:
        return self.lines, self.untimed, self.no_entity


class Stop(Exception):
    pass


def tag(message: str) -> TemplateMatch:
    verb = message.split()[-1] if message.split() else ""
    if verb == "boom":
        raise RuntimeError("a stage failed")
    return TemplateMatch(f"T{verb}", f"host <*> did {verb}", verb != "crash")


def record(kind: str, hosts: tuple[str, ...], ts: float, verb: str) -> bytes:
    if kind == "text":
        return f"host {hosts[0] if hosts else 'z'} plain text did {verb}".encode()
    if kind == "badutf8":
        return json.dumps({"message": " ".join(f"host {h}" for h in hosts) + " did ", "@timestamp": BASE + ts}
                          ).encode()[:-1] + b', "x": "\xff"}'
    message = " and ".join(f"host {h}" for h in hosts) + f" did {verb}" if hosts else f"nobody did {verb}"
    doc: dict[str, Any] = {"message": message}
    if hosts:
        doc["host.name"] = hosts[-1]
    if kind in ("timed", "fixed"):
        doc["@timestamp"] = BASE + ts
    elif kind == "future":
        doc["@timestamp"] = "2199-01-01T00:00:00Z"
    elif kind == "nan":
        doc["@timestamp"] = 1e400
    if kind == "fixed":
        doc["log.template"] = f"GET /{verb} 2xx"
    return json.dumps(doc).encode()


records = st.tuples(
    st.sampled_from(["timed"] * 6 + ["untimed", "future", "nan", "text", "badutf8", "fixed"]),
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=2).map(tuple),
    st.floats(0, 120).map(lambda x: round(x, 1)),
    st.sampled_from(["login", "read", "crash", "boom"]),
)


def window(w: Window) -> dict[str, Any]:
    out = asdict(w)
    out["offsets"] = None if w.offsets is None else list(w.offsets)
    return out


def reference(chain: RecordChain, lines: list[RawLine], tally: Counts, check: Any, check_at: int) -> Any:
    """The loop of ``pipeline.embedded.windowed`` before ``windows_of``."""
    for raw in lines:
        step = chain.add(raw)
        tally.lines += 1
        record_ = step.record
        if record_.timestamp is None and NOT_WINDOWED.isdisjoint(record_.flags):
            tally.untimed += 1
        if tally.lines == check_at:
            check()
        if not step.windowed and step.no_entity:
            tally.no_entity += 1
        if step.closed:
            yield step.closed


def run(settings_: PipelineSettings, json_mode: str, data: list[bytes], check_at: int, stop: bool,
        fused: bool) -> list[Any]:
    chain = RecordChain(settings_, tag, json_mode=json_mode, known=lambda tid: tid.endswith("0"))
    tally = Counts()
    checked: list[tuple[int, int, int]] = []

    def check() -> None:
        checked.append(tally.snapshot())
        if stop:
            raise Stop

    arrivals = [BASE + 1000.0, 0.0]  # a file's read time, and none (the clock bounds the future)
    lines = [RawLine(d, "logs/0", offset, None, arrivals[offset % 3 == 2]) for offset, d in enumerate(data)]
    batches = chain.windows_of(lines, tally, check, check_at) if fused else reference(
        chain, lines, tally, check, check_at)
    out: list[Any] = []
    try:
        out.extend([window(w) for w in batch] for batch in batches)
    except Stop:
        out.append("stopped")
    out.append((tally.snapshot(), checked, chain.windower.watermark, chain.last_time, dict(chain.clock._last),
                vars(chain.windower.stats), vars(chain.decoder.stats), chain.stage_errors, chain.late_records))
    out.append([window(w) for w in chain.flush()])
    return out


@settings(max_examples=400, deadline=None)
@given(stream=st.lists(records, max_size=40), kind=st.sampled_from([SESSION, TUMBLING, FIELD]),
       json_mode=st.sampled_from(["auto", "strict"]), check_at=st.integers(0, 42), stop=st.booleans())
@example(stream=[("timed", ("a",), 0.0, "login"), ("timed", ("b",), 30.0, "read"), ("timed", ("a", "b"), 60.0, "boom")],
         kind=SESSION, json_mode="auto", check_at=2, stop=False)
def test_the_fused_loop_equals_add_per_line(stream: list[tuple[str, tuple[str, ...], float, str]],
                                            kind: PipelineSettings, json_mode: str, check_at: int,
                                            stop: bool) -> None:
    data = [record(*r) for r in stream]
    assert run(kind, json_mode, data, check_at, stop, True) == run(kind, json_mode, data, check_at, stop, False)


@pytest.mark.parametrize("how", ["replay", "stream"])
def test_a_chain_with_replay_or_a_stream_name_goes_line_by_line(how: str) -> None:
    class Hook:
        def before(self, offset: int, watermark: float, clock: float | None) -> None:
            pass

        def should_skip(self, key: tuple[str, str], offset: int) -> bool:
            return offset == 1

        def done(self, offset: int) -> None:
            pass

    data = [record("timed", ("a",), t, "read") for t in (0.0, 1.0, 30.0, 60.0)]
    lines = [RawLine(d, "logs/0", offset, None, BASE + 1000.0) for offset, d in enumerate(data)]
    made = []
    for fused in (True, False):
        kwargs: dict[str, Any] = {"replay": Hook()} if how == "replay" else {"origin": "logs/0"}
        chain = RecordChain(SESSION, tag, **kwargs)
        tally = Counts()
        batches = chain.windows_of(lines, tally) if fused else reference(chain, lines, tally, lambda: None, 0)
        made.append(([[window(w) for w in batch] for batch in batches], tally.snapshot()))
    assert made[0] == made[1] and made[0][0]
    if how == "stream":
        assert made[0][0][0][0]["stream"] == "logs/0"
