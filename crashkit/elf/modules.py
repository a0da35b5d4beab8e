"""Mapped ELF files of a core, with the build-id the core holds, the file
found for each (crashkit.elf.locate: by build-id first) and its build-id."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from crashkit.elf.buildid import BuildIdResult, build_id_from_reader
from crashkit.elf.core import CoreFile
from crashkit.elf.locate import Located, locate, search_dirs
from crashkit.model.analyze import Mapping, Module


def by_file(mappings: Sequence[Mapping]) -> dict[str, list[Mapping]]:
    """The mappings of each distinct file, in address order."""
    out: dict[str, list[Mapping]] = {}
    for m in sorted(mappings, key=lambda m: m.start):
        out.setdefault(m.path, []).append(m)
    return out


def core_build_ids(core: CoreFile, mappings: Sequence[Mapping]) -> dict[str, BuildIdResult | None]:
    """Each mapped file's build-id as the core's memory holds it (None: the
    file's first page is not mapped at offset 0, so its headers are not there)."""
    out: dict[str, BuildIdResult | None] = {}
    for path, maps in by_file(mappings).items():
        head = next((m for m in maps if m.file_offset == 0), None)
        out[path] = None if head is None else build_id_from_reader(
            core.read_memory, base=head.start, limit=head.end - head.start)
    return out


def locate_all(in_core: dict[str, BuildIdResult | None], *, exe: str | None,
               sysroot: str | None, debug_dirs: Sequence[str],
               exe_option: str | None,
               fetch: Callable[[str], str | None] | None = None) -> dict[str, Located]:
    dirs = search_dirs(debug_dirs, sysroot)
    out: dict[str, Located] = {}
    for path, found in in_core.items():
        if found is not None and found.status == "not-elf":
            continue  # locale archives, fonts, caches: mapped, but not code
        bid = found.build_id if found is not None else None
        out[path] = locate(path, bid, sysroot=sysroot, dirs=dirs,
                           exe_option=exe_option if path == exe else None, fetch=fetch)
    return out


def _looks_like_code(path: str, maps: Sequence[Mapping],
                     exec_ranges: Sequence[tuple[int, int]]) -> bool:
    """A mapped file whose headers are neither in the core nor on this host:
    an ELF module if part of it was executable, or its name says so."""
    if any(s < m.end and m.start < e for m in maps for s, e in exec_ranges):
        return True
    name = os.path.basename(path)
    return ".so" in name or name.startswith("ld-")


def read_modules(core: CoreFile, mappings: Sequence[Mapping], *, sysroot: str | None = None,
                 debug_dirs: Sequence[str] = (), exe: str | None = None,
                 exe_option: str | None = None,
                 in_core: dict[str, BuildIdResult | None] | None = None,
                 located: dict[str, Located] | None = None,
                 exec_ranges: Sequence[tuple[int, int]] = ()) -> tuple[Module, ...]:
    """One Module per distinct mapped ELF file, in address order."""
    if in_core is None:
        in_core = core_build_ids(core, mappings)
    if located is None:
        located = locate_all(in_core, exe=exe, sysroot=sysroot, debug_dirs=debug_dirs,
                             exe_option=exe_option)
    out: list[Module] = []
    for path, maps in by_file(mappings).items():
        where = located.get(path)
        if where is None:
            continue  # not an ELF file (see locate_all)
        found = in_core.get(path)
        core_id = found.build_id if found is not None else None
        headers_in_core = found is not None and found.status == "ok"
        if not headers_in_core and where.status != "ok" and \
                not _looks_like_code(path, maps, exec_ranges):
            continue  # nothing shows it is an ELF file
        file_id = where.file_build_id if where.status == "ok" else None
        match = (core_id == file_id) if core_id and file_id else None
        out.append(Module(path=path, start=maps[0].start, end=max(m.end for m in maps),
                          build_id=core_id, file_build_id=file_id, build_id_match=match,
                          file_status=where.status, deleted=any(m.deleted for m in maps),
                          disk_path=where.path, found_by=where.found_by))
    return tuple(out)


def vdso_module(core: CoreFile, auxv: dict[str, int],
                segments: Sequence[tuple[int, int, str]]) -> Module | None:
    """The vDSO (the kernel's image mapped into every process, AT_SYSINFO_EHDR):
    no file holds it, but the core does, build-id included."""
    base = auxv.get("AT_SYSINFO_EHDR")
    if not base:
        return None
    seg = next(((s, e) for s, e, _p in segments if s <= base < e), None)
    if seg is None:
        return None
    found = build_id_from_reader(core.read_memory, base=base, limit=seg[1] - base)
    if found.status != "ok":
        return None
    return Module(path="[vdso]", start=base, end=seg[1], build_id=found.build_id,
                  file_build_id=None, build_id_match=None, file_status="ok",
                  disk_path=None, found_by="core", placed_by="core")


def vdso_kernel(core: CoreFile, vdso: Module) -> str | None:
    """The kernel version the vDSO was built for: its PT_NOTE holds a note
    named "Linux" of type 0 whose 4 bytes are LINUX_VERSION_CODE."""
    import struct

    from crashkit.elf import layouts as L
    from crashkit.elf.files import read_phdrs
    from crashkit.errors import MemoryReadError

    try:
        phdrs = read_phdrs(core.read_memory, vdso.start, vdso.end - vdso.start) or []
        for ph in phdrs:
            if ph.type != L.PT_NOTE or ph.filesz > 4096:
                continue
            data = core.read_memory(vdso.start + ph.offset, ph.filesz)
            pos = 0
            while pos + 12 <= len(data):
                namesz, descsz, ntype = L.NOTE_HEADER.unpack_from(data, pos)
                desc = pos + 12 + ((namesz + 3) & ~3)
                if desc + descsz > len(data):
                    break
                if data[pos + 12:pos + 12 + namesz].rstrip(b"\0") == b"Linux" and \
                        ntype == 0 and descsz == 4:
                    code = struct.unpack_from("<I", data, desc)[0]
                    return f"{code >> 16}.{(code >> 8) & 0xFF}.{code & 0xFF}"
                pos = desc + ((descsz + 3) & ~3)
    except MemoryReadError:
        return None
    return None
