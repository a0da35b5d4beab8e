"""Structure-aware mutations of a real ELF core (issue 18's fuzz suite).

A seed core is cut at its own structure: the ELF header, every program
header and every note. Each mutation damages one of those places the way a
hostile or broken writer would: truncation at a boundary, flipped bytes,
note sizes that overflow, an absurd NT_FILE, another class or byte order,
an executable's e_type, PN_XNUM without section 0.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from crashkit.elf.core import CoreFile
from crashkit.errors import CrashkitError

PT_NOTE = 4
NT_FILE = 0x46494C45


@dataclass(frozen=True)
class Seed:
    data: bytes
    boundaries: tuple[int, ...]  # offsets where a structure starts or ends
    notes: tuple[int, ...]  # offsets of note headers
    phoff: int
    phnum: int


def seed(path: str, keep: int = 64 << 10) -> Seed:
    """The core's headers and notes and ``keep`` bytes after them."""
    with open(path, "rb") as f:
        head = f.read(64)
        phoff, = struct.unpack_from("<Q", head, 32)
        phnum, = struct.unpack_from("<H", head, 56)
        f.seek(phoff)
        phdrs = f.read(56 * phnum)
        bounds = {0, 64, phoff, phoff + 56 * phnum}
        notes: list[int] = []
        end = phoff + 56 * phnum
        for i in range(phnum):
            p_type, _flags, off, _va, _pa, filesz = struct.unpack_from("<IIQQQQ", phdrs, i * 56)
            bounds.add(phoff + i * 56)
            if p_type == PT_NOTE:
                f.seek(off)
                raw = f.read(filesz)
                pos = 0
                while pos + 12 <= len(raw):
                    namesz, descsz, _t = struct.unpack_from("<III", raw, pos)
                    notes.append(off + pos)
                    bounds.add(off + pos)
                    pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
                end = max(end, off + filesz)
        f.seek(0)
        data = f.read(end + keep)
    return Seed(data, tuple(sorted(b for b in bounds if b <= len(data))), tuple(notes),
                phoff, phnum)


KINDS = ("truncate", "flip", "note_size", "nt_file", "class", "endian", "exec", "xnum")


def mutate(s: Seed, kind: str, a: int, b: int) -> bytes:
    """One mutation of ``s``; ``a`` and ``b`` are arbitrary non-negative ints."""
    d = bytearray(s.data)
    if kind == "truncate":
        cut = s.boundaries[a % len(s.boundaries)] + (b % 3) - 1
        return bytes(d[:max(0, cut)])
    if kind == "flip":
        regions = [(0, 64), (s.phoff, s.phoff + 56 * s.phnum)] + [(n, n + 64) for n in s.notes]
        lo, hi = regions[a % len(regions)]
        pos = lo + b % max(1, hi - lo)
        if pos < len(d):
            d[pos] ^= 1 << (a % 8)
        return bytes(d)
    if kind in ("note_size", "nt_file") and s.notes:
        n = s.notes[a % len(s.notes)]
        if kind == "note_size":
            struct.pack_into("<I", d, n + 4 * (b % 2), [0xFFFFFFFF, 0x7FFFFFFF, 1 << 20][b % 3])
        else:
            namesz, = struct.unpack_from("<I", d, n)
            desc = n + 12 + (namesz + 3) // 4 * 4
            struct.pack_into("<I", d, n + 8, NT_FILE)
            # count, page size: absurd, or one entry naming a device or a FIFO
            count = [1 << 62, 0xFFFFFFFF, 1, 3][b % 4]
            struct.pack_into("<QQ", d, desc, count, 4096)
            if count <= 3 and desc + 16 + 24 * count + 16 <= len(d):
                for i in range(count):
                    struct.pack_into("<QQQ", d, desc + 16 + 24 * i, 0x1000 * (i + 1),
                                     0x1000 * (i + 2), 0)
                names = b"/dev/stdin\0/dev/zero\0/tmp\0"
                at = desc + 16 + 24 * count
                d[at:at + len(names)] = names[:max(0, len(d) - at)]
        return bytes(d)
    if kind == "class":
        d[4] = 1
        return bytes(d)
    if kind == "endian":
        d[5] = 2
        return bytes(d)
    if kind == "exec":
        struct.pack_into("<H", d, 16, 2 + (b % 2))
        return bytes(d)
    if kind == "xnum":
        struct.pack_into("<H", d, 56, 0xFFFF)  # PN_XNUM, and section 0 may be missing
        struct.pack_into("<Q", d, 40, [0, 1 << 40, len(d)][b % 3])
        return bytes(d)
    return bytes(d)


def check(path: str) -> str:
    """Parse the core at ``path`` as analyze's readers do: a result ("ok") or
    one error line ("error: ..."); anything else raises."""
    try:
        with CoreFile(path) as core:
            facts = core.facts()
            from crashkit.elf.modules import read_modules

            read_modules(core, facts.mappings)
            if facts.threads and facts.threads[0].sp is not None:
                core.stack_words(facts.threads[0].sp, 16 * 1024)
    except CrashkitError as exc:
        line = str(exc)
        assert "\n" not in line, line
        return "error: " + line
    return "ok"


def seeds(cores_dir: str) -> list[str]:
    found = []
    for name in ("mismatch", "nginx-null", "mt-plugin", "truncated"):
        p = os.path.join(cores_dir, name, "core")
        if os.path.isfile(p):
            found.append(p)
    return found
