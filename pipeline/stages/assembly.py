"""Assembly: physical lines put back together into the records they were split from, before decoding.

Container runtimes split long lines: the CRI format marks each piece with the tag ``P`` (partial) and the last
one ``F`` (full) (Kubernetes ``kubelet-cri-logging.md``); Docker's json-file driver writes pieces of 16 KiB whose
``log`` does not end with ``\\n``. An assembler joins them per record key (a Kafka key: a pod) and stream
(stdout/stderr), so the decoder and the template miner see the line the program wrote.

An assembler takes raw lines in input order and returns the lines that are complete: :meth:`Assembler.push`
returns zero or more lines, :meth:`Assembler.flush` the rest at the end of a file or stream. A joined line
carries the origin and offset of its *first* piece (where a replay has to start to rebuild it) and is cut at
``max_bytes`` (marked ``truncated``, counted by the decoder like any long line): a stream of partial pieces
that never ends cannot grow without bound. Nothing is dropped: a piece without its end is emitted when the
stream ends, and a line that is not of the format passes through unchanged (the decoder counts it).
"""

from __future__ import annotations

import json
from collections import deque
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
    end: int = 0
    seen: float = 0.0
    truncated: bool = False
    out: RawLine | None = None  # set when complete


class Assembler:
    """Base: pieces keyed by (record key, stream) are held until their record is complete.

    Lines come out in the order of their first pieces (a complete line waits behind an earlier one still being
    assembled), so the worker's offsets stay in order; :meth:`held_offset` is the smallest offset not yet handed
    on and :meth:`expire` completes a group whose stream sent nothing for a while (a piece whose end never came).
    """

    def __init__(self, max_bytes: int = 65536) -> None:
        self.max_bytes = max_bytes
        self.stats = AssemblyStats()
        self._held: dict[bytes, _Held] = {}
        self._queue: deque[_Held] = deque()

    def push(self, raw: RawLine, now: float = 0.0) -> list[RawLine]:
        raise NotImplementedError

    @staticmethod
    def _key(raw: RawLine, stream: bytes) -> bytes:
        return (raw.key or b"") + b"\0" + stream

    def _pass(self, raw: RawLine) -> list[RawLine]:
        self._queue.append(_Held(raw, out=raw))
        return self._drain()

    def _hold(self, key: bytes, raw: RawLine, part: bytes, now: float, header: bool = False) -> None:
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held(raw)
            self._queue.append(held)
        held.lines += not header
        held.end = raw.last_offset
        held.seen = now
        room = self.max_bytes - held.size
        if len(part) > room:
            part = part[:max(room, 0)]
            held.truncated = True
        held.parts.append(part)
        held.size += len(part)
        held.truncated = held.truncated or raw.truncated

    def _complete(self, key: bytes) -> None:
        held = self._held.pop(key, None)
        if held is None:
            return
        if held.lines > 1:
            self.stats.joined += 1
            self.stats.pieces += held.lines
        first = held.first
        held.out = RawLine(self._render(key, held), first.origin, first.offset, first.key, first.arrival,
                           held.truncated, 1, held.end)

    def _drain(self) -> list[RawLine]:
        out: list[RawLine] = []
        queue = self._queue
        while queue and queue[0].out is not None:
            line = queue.popleft().out
            assert line is not None
            out.append(line)
        return out

    def _render(self, key: bytes, held: _Held) -> bytes:
        return b"".join(held.parts)

    def expire(self, now: float, timeout: float) -> list[RawLine]:
        """Complete the groups whose stream sent nothing for ``timeout`` seconds (their end never came)."""
        for key, held in list(self._held.items()):
            if now - held.seen >= timeout:
                self._complete(key)
        return self._drain()

    def flush(self) -> list[RawLine]:
        """Every held record as it is (end of a file or stream): nothing is lost."""
        for key in list(self._held):
            self._complete(key)
        return self._drain()

    def held_offset(self) -> int | None:
        return self._queue[0].first.offset if self._queue else None

    @property
    def holding(self) -> int:
        return len(self._queue)


class CriAssembler(Assembler):
    """``TIMESTAMP STREAM P|F CONTENT``: ``P`` pieces joined to the next ``F`` of the same stream."""

    def push(self, raw: RawLine, now: float = 0.0) -> list[RawLine]:
        parts = raw.data.split(b" ", 3)
        if len(parts) < 3 or parts[2].split(b":")[0] not in (b"P", b"F"):
            return self._pass(raw)  # not a CRI line: the decoder counts it as unmatched
        stream, tag = parts[1], parts[2].split(b":")[0]
        key = self._key(raw, stream)
        content = parts[3] if len(parts) > 3 else b""
        if tag == b"P":
            if key not in self._held:
                self._hold(key, raw, b" ".join([parts[0], stream, b"F", b""]), now, header=True)
            self._hold(key, raw, content, now)
            return self._drain()
        if key not in self._held:
            return self._pass(raw)
        self._hold(key, raw, content, now)
        self._complete(key)
        return self._drain()


class DockerAssembler(Assembler):
    """json-file pieces: a ``log`` without a final ``\\n`` continues in the next object of the same stream."""

    def __init__(self, max_bytes: int = 65536) -> None:
        super().__init__(max_bytes)
        self._meta: dict[bytes, dict[str, object]] = {}

    def push(self, raw: RawLine, now: float = 0.0) -> list[RawLine]:
        try:
            obj = json.loads(raw.data)
        except ValueError:
            return self._pass(raw)
        if not isinstance(obj, dict) or not isinstance(obj.get("log"), str):
            return self._pass(raw)
        key = self._key(raw, str(obj.get("stream", "")).encode())
        text: str = obj["log"]
        if text.endswith("\n") and key not in self._held:
            return self._pass(raw)
        if key not in self._held:
            self._meta[key] = {k: v for k, v in obj.items() if k != "log"}  # the first piece's time
        self._hold(key, raw, text.encode("utf-8", "surrogatepass"), now)
        if text.endswith("\n"):
            self._complete(key)
        return self._drain()

    def _render(self, key: bytes, held: _Held) -> bytes:
        meta = self._meta.pop(key, {})
        text = b"".join(held.parts).decode("utf-8", "replace")
        return json.dumps({"log": text, **meta}, ensure_ascii=False).encode()


ASSEMBLERS: dict[str, type[Assembler]] = {"cri": CriAssembler, "docker": DockerAssembler}


def assembled(lines: Iterable[RawLine], assembler: Assembler | None) -> Iterator[RawLine]:
    """``lines`` with split records joined; a record never spans two files (each file's end flushes)."""
    if assembler is None:
        return iter(lines)  # no generator in between: one call less per line
    return _assembled(lines, assembler)


def _assembled(lines: Iterable[RawLine], assembler: Assembler) -> Iterator[RawLine]:
    origin: str | None = None
    for raw in lines:
        if raw.origin != origin:
            yield from assembler.flush()
            origin = raw.origin
        yield from assembler.push(raw)
    yield from assembler.flush()
