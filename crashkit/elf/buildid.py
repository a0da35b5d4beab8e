"""GNU build-ids, read the same way from a file on disk or from a core's memory.

The kernel dumps the first page of every file-backed ELF mapping (bit 4 of
/proc/PID/coredump_filter, on by default), and linkers place the
.note.gnu.build-id note in that page, so the build-id of every mapped ELF is
in the core even when the rest of its text is not.
"""

from __future__ import annotations

import os
from typing import Literal, NamedTuple

from crashkit.elf import layouts as L
from crashkit.elf.files import Reader, fd_reader, is_elf, open_regular, read_phdrs
from crashkit.errors import MemoryReadError

MAX_NOTE_SEGMENT = 64 * 1024


class BuildIdResult(NamedTuple):
    status: Literal["ok", "not-elf", "unreadable"]
    build_id: str | None  # None for an ELF without a build-id note


def _strict(read: Reader) -> Reader:
    """A reader for which a short read is an unreadable address."""

    def strict(offset: int, size: int) -> bytes:
        data = read(offset, size)
        if len(data) < size:
            raise MemoryReadError(f"only {len(data)} of {size} bytes at {offset:#x}",
                                  address=offset)
        return data

    return strict


def build_id_from_reader(read: Reader, base: int = 0, limit: int | None = None) -> BuildIdResult:
    """Walk an ELF64 image's PT_NOTE segments for NT_GNU_BUILD_ID.

    ``read(address, size)`` returns bytes or raises MemoryReadError; ``base``
    is where the image's file offset 0 is; ``limit`` bounds file offsets (the
    length of the mapping that holds offset 0, or the file's size).
    """
    read = _strict(read)
    try:
        if not is_elf(read, base):
            return BuildIdResult("not-elf", None)
        phdrs = read_phdrs(read, base, limit)
        for ph in phdrs or ():  # None: 32-bit or big-endian, not ours to parse
            if ph.type != L.PT_NOTE or ph.filesz > MAX_NOTE_SEGMENT:
                continue
            if limit is not None and ph.offset + ph.filesz > limit:
                continue
            found = _find_build_id(read(base + ph.offset, ph.filesz))
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
    """Build-id of an ELF file on disk; raises OSError if it cannot be opened
    or is not a regular file. Kept per process by the identity of the opened
    file (device, inode, size, mtime): collect reads the same libraries for
    hundreds of cores, and a file replaced or rewritten is read again."""
    fd = open_regular(path)
    try:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        known = _BY_FILE.get(key)
        if known is None:
            read, size = fd_reader(fd)
            known = build_id_from_reader(read, 0, limit=size)
            if len(_BY_FILE) < 4096:
                _BY_FILE[key] = known
        return known
    finally:
        os.close(fd)


_BY_FILE: dict[tuple[int, int, int, int], BuildIdResult] = {}
