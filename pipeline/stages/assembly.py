"""Assembly: physical lines put back together into the records they were split from, before decoding.

Container runtimes split long lines: the CRI format marks each piece with the tag ``P`` (partial) and the last
one ``F`` (full) (Kubernetes ``kubelet-cri-logging.md``); Docker's json-file driver writes pieces of 16 KiB whose
``log`` does not end with ``\\n``. An assembler joins them per stream (stdout/stderr), so the decoder and the
template miner see the line the program wrote.

An assembler takes raw lines in input order and returns the lines that are complete: :meth:`Assembler.push`
returns zero or more lines, :meth:`Assembler.flush` the rest at the end of a file or stream. A joined line
carries the origin and offset of its *first* piece (where a replay has to start to rebuild it) and is cut at
``max_bytes`` (marked ``truncated``, counted by the decoder like any long line): a stream of partial pieces
that never ends cannot grow without bound. Nothing is dropped: a piece without its end is emitted when the
stream ends, and a line that is not of the format passes through unchanged (the decoder counts it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.records import RawLine


@dataclass
class AssemblyStats:
    joined: int = 0  # records made of more than one physical line
    pieces: int = 0  # physical lines that went into them


@dataclass
class _Held:
    first: RawLine
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    lines: int = 0
    truncated: bool = False


class Assembler:
    """Base: pieces keyed by stream are held until their record is complete."""

    def __init__(self, max_bytes: int = 65536) -> None:
        self.max_bytes = max_bytes
        self.stats = AssemblyStats()
        self._held: dict[bytes, _Held] = {}

    def push(self, raw: RawLine) -> list[RawLine]:
        raise NotImplementedError

    def _hold(self, key: bytes, raw: RawLine, part: bytes, header: bool = False) -> None:
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held(raw)
        held.lines += not header
        room = self.max_bytes - held.size
        if len(part) > room:
            part = part[:max(room, 0)]
            held.truncated = True
        held.parts.append(part)
        held.size += len(part)
        held.truncated = held.truncated or raw.truncated

    def _release(self, key: bytes) -> RawLine | None:
        held = self._held.pop(key, None)
        if held is None:
            return None
        if held.lines > 1:
            self.stats.joined += 1
            self.stats.pieces += held.lines
        first = held.first
        data = self._render(key, held)
        return RawLine(data, first.origin, first.offset, first.key, first.arrival, held.truncated)

    def _render(self, key: bytes, held: _Held) -> bytes:
        return b"".join(held.parts)

    def flush(self) -> list[RawLine]:
        """Every held record as it is (end of a file or stream): nothing is lost."""
        out = [self._release(key) for key in list(self._held)]
        return [line for line in out if line is not None]

    @property
    def holding(self) -> int:
        return len(self._held)


class CriAssembler(Assembler):
    """``TIMESTAMP STREAM P|F CONTENT``: ``P`` pieces joined to the next ``F`` of the same stream."""

    def push(self, raw: RawLine) -> list[RawLine]:
        parts = raw.data.split(b" ", 3)
        if len(parts) < 3 or parts[2].split(b":")[0] not in (b"P", b"F"):
            return [raw]  # not a CRI line: the decoder counts it as unmatched
        stream, tag = parts[1], parts[2].split(b":")[0]
        content = parts[3] if len(parts) > 3 else b""
        if tag == b"P":
            if stream not in self._held:
                self._hold(stream, raw, b" ".join([parts[0], stream, b"F", b""]), header=True)
            self._hold(stream, raw, content)
            return []
        if stream not in self._held:
            return [raw]
        self._hold(stream, raw, content)
        line = self._release(stream)
        return [line] if line is not None else []


class DockerAssembler(Assembler):
    """json-file pieces: a ``log`` without a final ``\\n`` continues in the next object of the same stream."""

    def push(self, raw: RawLine) -> list[RawLine]:
        try:
            obj = json.loads(raw.data)
        except ValueError:
            return [raw]
        if not isinstance(obj, dict) or not isinstance(obj.get("log"), str):
            return [raw]
        stream = str(obj.get("stream", "")).encode()
        text: str = obj["log"]
        if text.endswith("\n") and stream not in self._held:
            return [raw]
        if stream not in self._held:
            self._meta[stream] = {k: v for k, v in obj.items() if k != "log"}  # the first piece's time
        self._hold(stream, raw, text.encode("utf-8", "surrogatepass"))
        if not text.endswith("\n"):
            return []
        line = self._release(stream)
        return [line] if line is not None else []

    def __init__(self, max_bytes: int = 65536) -> None:
        super().__init__(max_bytes)
        self._meta: dict[bytes, dict[str, object]] = {}

    def _render(self, key: bytes, held: _Held) -> bytes:
        meta = self._meta.pop(key, {})
        text = b"".join(held.parts).decode("utf-8", "replace")
        return json.dumps({"log": text, **meta}, ensure_ascii=False).encode()


ASSEMBLERS: dict[str, type[Assembler]] = {"cri": CriAssembler, "docker": DockerAssembler}


def assembled(lines: Iterable[RawLine], assembler: Assembler | None) -> Iterator[RawLine]:
    """``lines`` with split records joined; a record never spans two files (each file's end flushes)."""
    if assembler is None:
        yield from lines
        return
    origin: str | None = None
    for raw in lines:
        if raw.origin != origin:
            yield from assembler.flush()
            origin = raw.origin
        yield from assembler.push(raw)
    yield from assembler.flush()
