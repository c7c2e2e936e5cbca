"""Compressed inputs: gzip, bzip2, xz and zstd, recognised by their magic bytes, never by the name alone.

Rotated logs come compressed by whatever the host's logrotate was told to use (``compresscmd``): gzip by
default, ``bzip2``, ``xz`` or ``zstd`` on many distributions. The first bytes of a stream say which it is
(RFC 1952 for gzip, ``BZh`` for bzip2, the xz header ``FD 37 7A 58 5A 00``, the zstd frame magic
``28 B5 2F FD``), so ``cat app.log.3.zst | logwarden detect -`` works, and a file named ``.xz`` that does not
start like xz is an error rather than a stream of garbage.

gzip, bzip2 and xz come with Python. zstd needs the ``zstandard`` package (the optional extra
``logwarden[zstd]``); without it a zstd input is a one-line error saying how to install it.

Every decompressor's failure (corrupt data, a stream that ends early) is mapped by :func:`describe_error` to one
line naming the format; :mod:`pipeline.sources.files` wraps it into an :class:`~pipeline.errors.InputError`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from dataclasses import dataclass
from typing import IO, Any, cast

from pipeline.errors import InputError


@dataclass(frozen=True)
class Codec:
    name: str  # as the user knows it, in messages
    magic: bytes
    suffixes: tuple[str, ...]


GZIP = Codec("gzip", b"\x1f\x8b", (".gz",))
BZIP2 = Codec("bzip2", b"BZh", (".bz2",))
XZ = Codec("xz", b"\xfd7zXZ\x00", (".xz",))
ZSTD = Codec("zstd", b"\x28\xb5\x2f\xfd", (".zst", ".zstd"))
CODECS = (GZIP, BZIP2, XZ, ZSTD)
MAGIC_BYTES = max(len(c.magic) for c in CODECS)
SUFFIXES = tuple(s for c in CODECS for s in c.suffixes)
ZSTD_HINT = "reading zstd needs the zstandard package: pip install 'logwarden[zstd]'"


def sniff(head: bytes) -> Codec | None:
    """The codec whose magic ``head`` starts with, or None for plain bytes."""
    return next((c for c in CODECS if head.startswith(c.magic)), None)


def named(path: str) -> Codec | None:
    """The codec a file name promises by its suffix (``.gz``, ``.bz2``, ``.xz``, ``.zst``)."""
    lower = path.lower()
    return next((c for c in CODECS if lower.endswith(c.suffixes)), None)


def open_codec(codec: Codec, base: IO[bytes]) -> IO[bytes]:
    """A binary reader of the decompressed bytes of ``base`` (which stays owned by the caller)."""
    if codec is GZIP:
        return cast(IO[bytes], gzip.GzipFile(fileobj=base, mode="rb"))
    if codec is BZIP2:
        return cast(IO[bytes], bz2.BZ2File(base, mode="rb"))
    if codec is XZ:
        return cast(IO[bytes], lzma.LZMAFile(base, mode="rb"))
    try:
        import zstandard
    except ImportError:
        raise InputError(ZSTD_HINT) from None
    return io.BufferedReader(_ZstdRaw(base, zstandard), buffer_size=1 << 16)


class _ZstdRaw(io.RawIOBase):
    """zstd frames one after another (like ``zstd -d``), failing with EOFError when the input ends mid-frame.

    ``zstandard``'s own stream reader returns a short read on a truncated frame without saying so; a
    decompression object tells (``eof``), so frames are fed through one here.
    """

    def __init__(self, base: IO[bytes], module: Any) -> None:
        self._base = base
        self._dctx = module.ZstdDecompressor()
        self._obj: Any = None  # None between frames
        self._out = b""
        self._pending = b""  # input read after a frame ended: the start of the next frame

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._out:
            data = self._pending or self._base.read(1 << 16)
            self._pending = b""
            if not data:
                if self._obj is not None:
                    raise EOFError("the compressed stream ends early")
                return 0
            if self._obj is None:
                self._obj = self._dctx.decompressobj()
            self._out = self._obj.decompress(data)
            if self._obj.eof:
                self._pending = self._obj.unused_data
                self._obj = None
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        self._out = self._out[n:]
        return n


def describe_error(exc: BaseException, codec: Codec | None) -> str | None:
    """One line for a decompressor's failure, or None when ``exc`` is not one."""
    name = codec.name if codec is not None else "compressed"
    if isinstance(exc, EOFError):
        return f"truncated {name} data (the compressed stream ends early)"
    if isinstance(exc, gzip.BadGzipFile | zlib.error | lzma.LZMAError):
        return f"corrupt {name} data ({exc})"
    if type(exc).__name__ == "ZstdError":
        return f"corrupt {name} data ({exc})"
    if codec is BZIP2 and isinstance(exc, OSError) and not exc.errno:
        return f"corrupt {name} data ({exc})"  # bz2 says "Invalid data stream" as a bare OSError
    return None
