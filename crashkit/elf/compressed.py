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
        self._d: _Gzip | lzma.LZMADecompressor | lz4.frame.LZ4FrameDecompressor
        if kind == "xz":
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


class _Pull:
    """Decompressed bytes pulled from a descriptor (read from its current
    offset): ``read(n)`` gives at most ``n`` bytes, b"" at the end, after
    which ``complete`` says whether the stream ended properly.

    zstd goes through zstandard's stream_reader, whose ``read(n)`` bounds
    its output (zstd's ratio on the zero pages that fill cores is ~30,000:1,
    so bounding the input would not bound the output); it takes a stream
    cut mid-frame for its end, so completeness is checked apart, by walking
    the frames' block headers (:func:`_zstd_walk`). The others push input
    into a decoder that takes an output limit."""

    def __init__(self, fd: int, kind: Compression) -> None:
        self.kind = kind
        self.complete = False
        self._fd = fd
        self._start = os.lseek(fd, 0, os.SEEK_CUR)
        self._z: zstandard.ZstdDecompressionReader | None = None
        self._dec: _Decoder | None = None
        if kind == "zstd":
            self._z = zstandard.ZstdDecompressor().stream_reader(
                open(fd, "rb", buffering=0, closefd=False),  # noqa: SIM115 - the fd's owner closes
                read_size=_CHUNK, read_across_frames=True, closefd=False)
        else:
            self._dec = _Decoder(kind)

    def read(self, n: int) -> bytes:
        if self._z is not None:
            out: bytes = self._z.read(n)
            if not out:
                self.complete = _zstd_walk(_Window(self._fd), self._start)[0]
            return out
        dec = self._dec
        assert dec is not None
        while True:
            if dec.pending():
                got = dec.feed(b"", n)
                if got:
                    return got
                continue
            if dec.eof:
                self.complete = True
                return b""
            data = os.read(self._fd, _CHUNK)
            if not data:
                self.complete = dec.eof
                return b""
            got = dec.feed(data, n)
            if got:
                return got



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
    pull = _Pull(fd, kind)
    out = bytearray()
    try:
        while len(out) < nbytes:
            got = pull.read(nbytes - len(out))
            if not got:
                break
            out += got
        extra = pull.read(1) if len(out) >= nbytes else b""
    except _CODEC_ERRORS as exc:
        raise _bad(path, kind, exc) from exc
    return Front(kind, bytes(out), not extra and pull.complete)


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
    pull = _Pull(src_fd, kind)
    try:
        while True:
            out = pull.read(_CHUNK * 8)
            if not out:
                break
            yield out
    except _CODEC_ERRORS as exc:
        raise _bad(path, kind, exc) from exc
    if not pull.complete:
        raise CoreFormatError(f"{kind} stream ends early (truncated file)", path=path)


def open_stream(src_fd: int, *, path: str = "<fd>") -> BinaryIO:
    """A file object reading the decompressed content of ``src_fd``."""
    return io.BufferedReader(ChunkReader(iter_decompressed(src_fd, path=path)),
                             buffer_size=_CHUNK)


# ---------------------------------------------------------------- the front

# How much of a compressed core's decompressed stream --no-gdb decodes at
# most (and keeps in memory): headers and notes take a few hundred KiB (a
# few MiB for thousands of threads), so any core's notes fit; memory past
# it (a big core's heap, its libraries' first pages, the stack at the end)
# stays compressed. A single zstd/xz/lz4/gzip frame has no random access
# (each block depends on the window before it), so reaching byte N costs
# decoding every byte before it: the budget keeps the cost flat in the
# core's size.
FRONT_BUDGET = 32 << 20


class NotDecompressed(Exception):
    """A read past the part of a compressed core that is decoded."""

    def __init__(self, offset: int, budget: int) -> None:
        super().__init__(f"byte {offset:#x} lies past the first {budget >> 20} MiB of the "
                         "compressed core, which is not decompressed for notes-only facts")
        self.offset = offset


class FrontImage:
    """Random reads over the front of a compressed core, decoding forward only
    as far as a read asks (at most ``budget`` bytes, all kept in memory).

    ``size`` is the decompressed size when it is known without decoding the
    whole stream: a size given by the caller (the store's index), the
    stream's own record of it (every zstd frame's Frame_Content_Size, the xz
    index), or the end of the stream met within the budget; else None."""

    def __init__(self, path: str, *, budget: int = FRONT_BUDGET,
                 size_hint: int | None = None, dir_fd: int | None = None) -> None:
        self.path = path
        self.budget = budget
        self._fd = _open_nofollow(path, dir_fd)
        try:
            self.kind = _kind_at(self._fd, path)
            self._declared = size_hint if size_hint is not None else \
                declared_size(self._fd, self.kind)
        except BaseException:
            os.close(self._fd)
            raise
        self._pull = _Pull(self._fd, self.kind)
        # Decoded pieces as they came (never joined: no copy as they grow).
        self._pieces: list[bytes] = []
        self._starts: list[int] = []
        self._len = 0
        self._done = False  # the decoder ended or the input ran out
        self.problem: str | None = None  # the stream was cut or damaged at ``decoded``

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def decoded(self) -> int:
        """Decompressed bytes read so far."""
        return self._len

    def known_size(self) -> int | None:
        """The decompressed size if known by now (never decodes)."""
        if self._declared is not None and self.problem is None:
            return self._declared
        return self._len if self._done else None

    def read(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset``: short past the end of the stream,
        NotDecompressed past the budget."""
        if offset < 0 or n <= 0:
            return b""
        end = offset + n
        if self._declared is not None and self.problem is None:
            end = min(end, self._declared)
            if end <= offset:
                return b""
        if end > max(self.budget, self._len) and not self._done:
            self._fill(self.budget)  # the stream may end first: then the read is short
            if not self._done:
                raise NotDecompressed(max(offset, self.budget), self.budget)
        self._fill(end)
        return self._slice(offset, end)

    def _slice(self, offset: int, end: int) -> bytes:
        import bisect

        end = min(end, self._len)
        i = max(bisect.bisect_right(self._starts, offset) - 1, 0)
        out = []
        while offset < end and i < len(self._pieces):
            piece, start = self._pieces[i], self._starts[i]
            out.append(piece[offset - start:end - start])
            offset = start + len(piece)
            i += 1
        return b"".join(out)

    def allow(self, end: int) -> None:
        """Raise the budget to ``end`` (the end of the headers and notes,
        however many threads wrote them)."""
        self.budget = max(self.budget, end)

    def _fill(self, end: int) -> None:
        while self._len < end and not self._done:
            try:
                got = self._pull.read(min(end - self._len, _CHUNK * 8))
            except _CODEC_ERRORS as exc:
                self._done = True
                self.problem = f"damaged {self.kind} stream after {self._len} bytes: {exc}"
                if self._len < 64:
                    raise _bad(self.path, self.kind, exc) from exc
                return
            if not got:
                self._done = True
                if not self._pull.complete:
                    self.problem = (f"the {self.kind} stream ends early: "
                                    f"{self._len} bytes decompress from it")
                return
            self._starts.append(self._len)
            self._pieces.append(got)
            self._len += len(got)


def declared_size(fd: int, kind: Compression) -> int | None:
    """The decompressed size a compressed file records about itself, found
    without decoding it: the sum of every zstd frame's Frame_Content_Size
    (RFC 8878 3.1.1.1.4; None when a frame leaves it out, as
    systemd-coredump's and streaming writers' frames do), or the xz index's
    uncompressed sizes (the .xz file format, 4 and 6). None for lz4 and
    gzip (whose ISIZE is the size modulo 2**32)."""
    reader = _Window(fd)
    try:
        if kind == "zstd":
            return _zstd_size(reader)
        if kind == "xz":
            return _xz_size(reader)
    except (IndexError, ValueError):
        return None
    return None


class _Window:
    """pread through a 4 KiB window (walking block headers costs one
    system call per window, not per header)."""

    _SPAN = 4096

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.total = os.fstat(fd).st_size
        self._start = 0
        self._data = b""

    def read(self, pos: int, n: int) -> bytes:
        if not (self._start <= pos and pos + n <= self._start + len(self._data)):
            self._start = pos
            self._data = os.pread(self.fd, max(n, self._SPAN), pos)
        rel = pos - self._start
        out = self._data[rel:rel + n]
        if len(out) < n:
            raise ValueError("short")
        return out


_ZSTD_FRAME = 0xFD2FB528
_DICT_ID_BYTES = (0, 1, 2, 4)


def _zstd_size(r: _Window) -> int | None:
    complete, size = _zstd_walk(r, 0)
    return size if complete else None


def _zstd_walk(r: _Window, pos: int) -> tuple[bool, int | None]:
    """Walk the frames from ``pos`` by their headers and block headers
    (RFC 8878 3.1.1, 3.1.1.2), decoding nothing: (every frame is whole and
    they end where the file does, the sum of their Frame_Content_Size or
    None when a frame leaves it out)."""
    size: int | None = 0
    try:
        while pos < r.total:
            magic = int.from_bytes(r.read(pos, 4), "little")
            if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame (3.1.2)
                pos += 8 + int.from_bytes(r.read(pos + 4, 4), "little")
                continue
            if magic != _ZSTD_FRAME:
                return False, None
            fhd = r.read(pos + 4, 1)[0]
            single = fhd >> 5 & 1
            fcs_bytes = (single, 2, 4, 8)[fhd >> 6]
            at = pos + 5 + (1 - single) + _DICT_ID_BYTES[fhd & 3]
            if fcs_bytes == 0 or size is None:
                size = None  # Frame_Content_Size absent: only decoding tells
            else:
                size += int.from_bytes(r.read(at, fcs_bytes), "little") + \
                    (256 if fcs_bytes == 2 else 0)
            pos = at + fcs_bytes
            while True:
                head = int.from_bytes(r.read(pos, 3), "little")
                btype, bsize = head >> 1 & 3, head >> 3
                if btype == 3:
                    return False, None  # reserved: a damaged frame
                pos += 3 + (1 if btype == 1 else bsize)  # an RLE block's content is one byte
                if head & 1:
                    break
            pos += 4 * (fhd >> 2 & 1)  # Content_Checksum
    except ValueError:  # cut inside a header
        return False, None
    return pos == r.total, size


def _vli(r: _Window, pos: int) -> tuple[int, int]:
    """An xz variable-length integer (the .xz file format, 1.2): (value, next pos)."""
    value = 0
    for i in range(9):
        byte = r.read(pos + i, 1)[0]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise ValueError("vli")


def _xz_size(r: _Window) -> int | None:
    """Sum the Uncompressed Size of every index record, stream by stream
    from the end (stream footer 2.1.2, index 4, stream padding 2.2)."""
    end = r.total
    size = 0
    while end > 0:
        while end >= 4 and r.read(end - 4, 4) == b"\0\0\0\0":
            end -= 4  # stream padding
        if end < 24:
            return None
        footer = r.read(end - 12, 12)
        if footer[10:] != b"YZ" or zlib.crc32(footer[4:10]) != int.from_bytes(footer[:4],
                                                                             "little"):
            return None
        index_size = (int.from_bytes(footer[4:8], "little") + 1) * 4
        index = end - 12 - index_size
        if index < 12 or r.read(index, 1) != b"\0":
            return None
        raw = r.read(index, index_size)
        if zlib.crc32(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            return None
        count, pos = _vli(r, index + 1)
        blocks = 0
        for _ in range(count):
            unpadded, pos = _vli(r, pos)
            uncompressed, pos = _vli(r, pos)
            blocks += (unpadded + 3) & ~3
            size += uncompressed
        start = index - blocks - 12
        if start < 0 or r.read(start, 6) != b"\xfd7zXZ\x00":
            return None
        end = start
    return size
