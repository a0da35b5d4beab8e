"""Mapped ELF files of a core, with the build-id the core holds and the one on disk."""

from __future__ import annotations

import errno
from collections.abc import Sequence

from crashkit.elf.buildid import BuildIdResult, build_id_from_reader, file_build_id
from crashkit.elf.core import CoreFile
from crashkit.elf.symbols import host_path
from crashkit.model.analyze import FileStatus, Mapping, Module


def _disk_build_id(path: str) -> tuple[FileStatus, BuildIdResult | None]:
    try:
        result = file_build_id(path)
    except FileNotFoundError:
        return "missing", None
    except OSError as exc:
        return ("missing" if exc.errno == errno.ENOTDIR else "unreadable"), None
    if result.status == "not-elf":
        return "not-elf", result
    if result.status == "unreadable":
        return "unreadable", result
    return "ok", result


def read_modules(core: CoreFile, mappings: Sequence[Mapping], *, sysroot: str | None = None,
                 path_map: dict[str, str] | None = None) -> tuple[Module, ...]:
    """One Module per distinct mapped ELF file, in address order."""
    by_path: dict[str, list[Mapping]] = {}
    for m in sorted(mappings, key=lambda m: m.start):
        by_path.setdefault(m.path, []).append(m)
    path_map = path_map or {}
    out: list[Module] = []
    for path, maps in by_path.items():
        head = next((m for m in maps if m.file_offset == 0), None)
        in_core: BuildIdResult | None = None
        if head is not None:
            in_core = build_id_from_reader(core.read_memory, base=head.start,
                                           limit=head.end - head.start)
        if in_core is not None and in_core.status == "not-elf":
            continue  # locale archives, fonts, caches: mapped, but not code
        deleted = any(m.deleted for m in maps)
        disk = path_map.get(path) or host_path(path, sysroot)
        status, on_disk = _disk_build_id(disk)
        if (in_core is None or in_core.status == "unreadable") and status != "ok":
            continue  # neither the core nor the disk shows it is an ELF file
        core_id = in_core.build_id if in_core else None
        file_id = on_disk.build_id if on_disk and status == "ok" else None
        match = (core_id == file_id) if core_id and file_id else None
        out.append(Module(path=path, start=maps[0].start, end=max(m.end for m in maps),
                          build_id=core_id, file_build_id=file_id, build_id_match=match,
                          file_status=status, deleted=deleted, disk_path=disk))
    return tuple(out)
