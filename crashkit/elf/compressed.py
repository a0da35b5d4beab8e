"""Cores stored compressed: recognising the format, reading the front of the
stream, and streaming the whole core out.

A core's ELF header, program headers and PT_NOTE segment come first in the
file (the kernel writes them before any memory: fs/binfmt_elf.c,
elf_core_dump), so notes-only analysis needs only the first few hundred KiB
of the decompressed stream, however large the core.

Formats are told by their magic numbers, never by a file's name:

- zstd: frame magic 0xFD2FB528, little-endian (RFC 8878, section 3.1.1);
- xz: ``FD 37 7A 58 5A 00`` (the .xz file format, section 2.1.1.1);
- lz4: frame magic 0x184D2204, little-endian (lz4 Frame format, "General
  structure"), the format systemd-coredump writes with LZ4F;
- gzip: ``1F 8B 08`` (RFC 1952, section 2.3.1; 08 is deflate).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import lz4.frame  # type: ignore[import-untyped]  # lz4 ships no type hints
import zstandard

from crashkit.errors import CoreFormatError, InputError
from crashkit.formats.compression import MAGIC_BYTES, Compression, detect

__all__ = ["MAGIC_BYTES", "Compression", "detect"]
_CHUNK = 1 << 17


class _Zstd:
    """zstd with the face of :class:`lzma.LZMADecompressor` (``max_length``,
    ``needs_input``, ``eof``), across concatenated frames.

    zstandard's decompressobj has no output limit, and zstd's ratio on the
    zero pages that fill cores is ~30,000:1, so input goes in small slices
    to keep each step's output bounded (a few tens of MiB at worst). Frames
    are chained by hand: with ``read_across_frames`` the object never
    reports ``eof``, and a stream cut off mid-frame must be told from a
    complete one."""

    _SLICE = 2048

    def __init__(self) -> None:
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._in = b""
        self._pos = 0
        self._out = bytearray()
        self._frames = 0

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if data:
            self._in = self._in[self._pos:] + data
            self._pos = 0
        while (max_length < 0 or len(self._out) < max_length) and self._pos < len(self._in):
            if self._obj.eof:
                self._obj = self._dctx.decompressobj()
            piece = self._in[self._pos:self._pos + self._SLICE]
            self._pos += len(piece)
            self._out += self._obj.decompress(piece)
            if self._obj.eof:
                self._frames += 1
                unused = self._obj.unused_data
                self._pos -= len(unused)
        if max_length < 0:
            out = bytes(self._out)
            self._out.clear()
        else:
            out = bytes(self._out[:max_length])
            del self._out[:max_length]
        return out

    @property
    def needs_input(self) -> bool:
        return self._pos >= len(self._in) and not self._out

    @property
    def eof(self) -> bool:
        # Complete: the last frame ended, no input is left over and all its
        # output has been handed out (lzma's and zlib's eof imply the same:
        # liblzma and zlib report the stream's end only once it is flushed).
        return (self._frames > 0 and self._obj.eof and self._pos >= len(self._in)
                and not self._out)


class _Gzip:
    """zlib's gzip decoder (16 + MAX_WBITS: a gzip header and trailer around
    deflate, per zlib's inflateInit2 documentation) with the same face."""

    def __init__(self) -> None:
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._tail = b""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        out = self._obj.decompress(self._tail + data, max(max_length, 0))
        self._tail = self._obj.unconsumed_tail
        return out

    @property
    def needs_input(self) -> bool:
        return not self._tail

    @property
    def eof(self) -> bool:
        return self._obj.eof


class _Decoder:
    """One incremental decompressor: ``feed(data, limit)`` returns at most
    ``limit`` bytes and keeps the rest inside; ``pending()`` says whether
    output is still held back without more input."""

    def __init__(self, kind: Compression) -> None:
        self.kind = kind
        self._d: _Zstd | _Gzip | lzma.LZMADecompressor | lz4.frame.LZ4FrameDecompressor
        if kind == "zstd":
            self._d = _Zstd()
        elif kind == "xz":
            self._d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        elif kind == "lz4":
            self._d = lz4.frame.LZ4FrameDecompressor()
        else:
            self._d = _Gzip()

    def feed(self, data: bytes, limit: int) -> bytes:
        if self._d.eof:
            # Trailing bytes after a complete xz/lz4/gzip stream are ignored
            # (lzma and lz4 raise EOFError when fed after the end).
            return b""
        out: bytes = self._d.decompress(data, limit)
        return out

    def pending(self) -> bool:
        return not self._d.eof and not self._d.needs_input

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)


def _chunks(fd: int) -> Iterator[bytes]:
    while True:
        data = os.read(fd, _CHUNK)
        if not data:
            return
        yield data


def _bad(path: str, kind: str, exc: Exception) -> CoreFormatError:
    return CoreFormatError(f"damaged {kind} stream: {exc}", path=path)


# What each library raises on a corrupt stream (zstandard.ZstdError; lzma's
# LZMAError; lz4.frame raises RuntimeError; zlib.error; EOFError for short
# streams in gzip's module).
_CODEC_ERRORS: tuple[type[Exception], ...] = (
    zstandard.ZstdError, lzma.LZMAError, RuntimeError, zlib.error, EOFError, gzip.BadGzipFile,
)


@dataclass(frozen=True)
class Front:
    """The first bytes of a compressed core, decompressed."""

    kind: Compression
    data: bytes
    complete: bool  # the whole stream fit in ``data`` (and it ended properly)


def front_of_fd(fd: int, nbytes: int, *, path: str = "<fd>") -> Front:
    """The first ``nbytes`` decompressed bytes of the stream open on ``fd``
    (read from its current offset). Reads only as much input as that takes."""
    kind = _kind_at(fd, path)
    dec = _Decoder(kind)
    out = bytearray()
    try:
        for data in _chunks(fd):
            out += dec.feed(data, nbytes - len(out))
            while len(out) < nbytes and dec.pending():
                out += dec.feed(b"", nbytes - len(out))
            if len(out) >= nbytes or dec.eof:
                break
        else:
            # Input ended: drain what the decoder still holds.
            while len(out) < nbytes and dec.pending():
                out += dec.feed(b"", nbytes - len(out))
    except _CODEC_ERRORS as exc:
        raise _bad(path, kind, exc) from exc
    complete = dec.eof and not dec.pending() and len(out) <= nbytes
    return Front(kind, bytes(out[:nbytes]), complete)


def _open_nofollow(path: str, dir_fd: int | None) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", path=path) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError("not a regular file", path=path)
    return fd


def open_front(path: str, nbytes: int, *, dir_fd: int | None = None) -> Front:
    """The first ``nbytes`` decompressed bytes of the compressed core at
    ``path`` (relative to ``dir_fd`` when given; symlinks are not followed)."""
    fd = _open_nofollow(path, dir_fd)
    try:
        return front_of_fd(fd, nbytes, path=path)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Decompressed:
    """What :func:`decompress_to` wrote."""

    kind: Compression
    size: int
    sha256: str


def decompress_fd_to(src_fd: int, dest_fd: int, *, path: str = "<fd>") -> Decompressed:
    """Stream the whole decompressed content of ``src_fd`` into ``dest_fd``;
    its size and SHA-256. A stream that ends early is an error: a truncated
    compressed file is not a core we can vouch for."""
    kind = _kind_at(src_fd, path)
    digest = hashlib.sha256()
    size = 0
    for out in iter_decompressed(src_fd, path=path):
        digest.update(out)
        size += len(out)
        _write_all(dest_fd, out)
    return Decompressed(kind, size, digest.hexdigest())


def decompress_to(path: str, dest_fd: int, *, dir_fd: int | None = None) -> Decompressed:
    """Stream the decompressed core at ``path`` into ``dest_fd``."""
    fd = _open_nofollow(path, dir_fd)
    try:
        return decompress_fd_to(fd, dest_fd, path=path)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class ChunkReader(io.RawIOBase):
    """A read-only binary file over an iterator of byte chunks, so that a
    stream decoded on the fly (an apport CoreDump: field, a compressed core)
    can be handed to code that wants a file object."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = nxt
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _kind_at(fd: int, path: str) -> Compression:
    kind = detect(os.pread(fd, MAGIC_BYTES, os.lseek(fd, 0, os.SEEK_CUR)))
    if kind is None:
        raise CoreFormatError("not zstd, xz, lz4 or gzip data (unknown magic)", path=path)
    return kind


def iter_decompressed(src_fd: int, *, path: str = "<fd>") -> Iterator[bytes]:
    """The decompressed content of ``src_fd`` as chunks of at most 1 MiB
    (memory stays bounded whatever the ratio). Raises CoreFormatError when
    the stream is damaged or ends early."""
    kind = _kind_at(src_fd, path)
    dec = _Decoder(kind)
    limit = _CHUNK * 8
    try:
        for data in _chunks(src_fd):
            out = dec.feed(data, limit)
            while True:
                if out:
                    yield out
                if not dec.pending():
                    break
                out = dec.feed(b"", limit)
    except _CODEC_ERRORS as exc:
        raise _bad(path, kind, exc) from exc
    if not dec.eof:
        raise CoreFormatError(f"{kind} stream ends early (truncated file)", path=path)


def open_stream(src_fd: int, *, path: str = "<fd>") -> BinaryIO:
    """A file object reading the decompressed content of ``src_fd``."""
    return io.BufferedReader(ChunkReader(iter_decompressed(src_fd, path=path)),
                             buffer_size=_CHUNK)
