"""Opening files a core names, and reading ELF64 program headers, in one place.

Paths and offsets come from an untrusted core: a path may name a FIFO or a
device (opening it must not block), and an offset may lie past the end of
the file or past 2**63.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from crashkit.elf import layouts as L

Reader = Callable[[int, int], bytes]


def open_regular(path: str) -> int:
    """A read-only descriptor for a regular file; OSError for anything else
    (a FIFO, a socket or a device named by a hostile core must not block us)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", path)
    return fd


def fd_reader(fd: int) -> tuple[Reader, int]:
    """(read(offset, size), file size) for a descriptor; reads past the end are short."""
    size = os.fstat(fd).st_size

    def read(offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= size:
            return b""
        return os.pread(fd, min(n, size - offset), offset)

    return read, size


@contextmanager
def regular_file(path: str) -> Iterator[tuple[Reader, int]]:
    """(read, size) of a regular file opened with :func:`open_regular`."""
    fd = open_regular(path)
    try:
        yield fd_reader(fd)
    finally:
        os.close(fd)


class ProgramHeader(NamedTuple):
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


def parse_phdrs(raw: bytes) -> list[ProgramHeader]:
    usable = len(raw) - len(raw) % L.ELF64_PHDR.size
    return [ProgramHeader(t, f, off, vaddr, filesz, memsz)
            for t, f, off, vaddr, _paddr, filesz, memsz, _align
            in L.ELF64_PHDR.iter_unpack(raw[:usable])]


def read_phdrs(read: Reader, base: int = 0, limit: int | None = None,
               ) -> list[ProgramHeader] | None:
    """The program headers of the ELF64 little-endian image whose byte 0 is at
    ``base``; None when it is not one. Raises what ``read`` raises."""
    ehdr = read(base, L.ELF64_EHDR.size)
    if len(ehdr) < L.ELF64_EHDR.size or not ehdr.startswith(b"\x7fELF"):
        return None
    if ehdr[4] != 2 or ehdr[5] != 1:
        return None
    fields = L.ELF64_EHDR.unpack(ehdr)
    phoff, phentsize, phnum = fields[5], fields[9], fields[10]
    if phentsize != L.ELF64_PHDR.size or not 0 < phnum < 4096:
        return []
    if limit is not None and phoff + phnum * phentsize > limit:
        return []
    return parse_phdrs(read(base + phoff, phnum * phentsize))


def is_elf(read: Reader, base: int = 0) -> bool:
    return read(base, 4) == b"\x7fELF"
