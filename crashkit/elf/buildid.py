"""GNU build-ids, read the same way from a file on disk or from a core's memory.

The kernel dumps the first page of every file-backed ELF mapping (bit 4 of
/proc/PID/coredump_filter, on by default), and linkers place the
.note.gnu.build-id note in that page, so the build-id of every mapped ELF is
in the core even when the rest of its text is not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

from crashkit.elf import layouts as L
from crashkit.errors import MemoryReadError

Reader = Callable[[int, int], bytes]
MAX_NOTE_SEGMENT = 64 * 1024


class BuildIdResult(NamedTuple):
    status: Literal["ok", "not-elf", "unreadable"]
    build_id: str | None  # None for an ELF without a build-id note


def _read(read: Reader, offset: int, size: int) -> bytes:
    data = read(offset, size)
    if len(data) < size:
        raise MemoryReadError(f"only {len(data)} of {size} bytes at {offset:#x}", address=offset)
    return data


def build_id_from_reader(read: Reader, base: int = 0, limit: int | None = None) -> BuildIdResult:
    """Walk an ELF64 image's PT_NOTE segments for NT_GNU_BUILD_ID.

    ``read(address, size)`` returns bytes or raises MemoryReadError; ``base``
    is where the image's file offset 0 is; ``limit`` bounds file offsets (the
    length of the mapping that holds offset 0, or the file's size).
    """
    try:
        ehdr = _read(read, base, L.ELF64_EHDR.size)
        if not ehdr.startswith(b"\x7fELF"):
            return BuildIdResult("not-elf", None)
        if ehdr[4] != 2 or ehdr[5] != 1:
            return BuildIdResult("ok", None)  # 32-bit or big-endian: not ours to parse
        fields = L.ELF64_EHDR.unpack(ehdr)
        phoff, phentsize, phnum = fields[5], fields[9], fields[10]
        if phentsize != L.ELF64_PHDR.size or phnum == 0 or phnum > 4096:
            return BuildIdResult("ok", None)
        if limit is not None and phoff + phnum * phentsize > limit:
            return BuildIdResult("unreadable", None)
        phdrs = _read(read, base + phoff, phnum * phentsize)
        for p_type, _f, p_offset, _v, _p, p_filesz, _m, _a in L.ELF64_PHDR.iter_unpack(phdrs):
            if p_type != L.PT_NOTE or p_filesz > MAX_NOTE_SEGMENT:
                continue
            if limit is not None and p_offset + p_filesz > limit:
                continue
            found = _find_build_id(_read(read, base + p_offset, p_filesz))
            if found is not None:
                return BuildIdResult("ok", found)
        return BuildIdResult("ok", None)
    except MemoryReadError:
        return BuildIdResult("unreadable", None)


def _find_build_id(data: bytes) -> str | None:
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = L.NOTE_HEADER.unpack_from(data, pos)
        desc = pos + 12 + ((namesz + 3) & ~3)
        if desc + descsz > len(data):
            return None
        if ntype == L.NT_GNU_BUILD_ID and data[pos + 12:pos + 12 + namesz] == b"GNU\0":
            return data[desc:desc + descsz].hex()
        pos = desc + ((descsz + 3) & ~3)
    return None


def file_build_id(path: str) -> BuildIdResult:
    """Build-id of an ELF file on disk; raises OSError if it cannot be opened."""
    import os

    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        return build_id_from_reader(
            lambda off, n: os.pread(fd, min(n, size - off), off) if 0 <= off < size else b"",
            0, limit=size)
    finally:
        os.close(fd)
