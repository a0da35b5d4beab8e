"""Where the executable and libraries were, for a core without an NT_FILE note
(older kernels, some dumpers): from the auxiliary vector and the dynamic
linker's own list in the process's memory.

- The executable: AT_ENTRY is its entry point in memory and ``e_entry`` the
  same point in the file, so their difference is the load bias; each PT_LOAD
  of the file is then mapped at bias + p_vaddr.
- The libraries: the executable's PT_DYNAMIC (at bias + p_vaddr) holds a
  DT_DEBUG entry that the dynamic linker fills with the address of its
  ``struct r_debug``, whose ``r_map`` heads the ``struct link_map`` list:
  ``l_addr`` (the load bias), ``l_name`` (the path it opened), ``l_next``
  (glibc's <link.h>; the layout is the same on every 64-bit Linux). Each
  library's PT_LOADs come from its file, else from its ELF header in the
  core's memory (the kernel dumps the first page of every ELF mapping).

Everything read from memory is bounded (entries, names, list length), since
a damaged or hostile core may hold anything there.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from crashkit.elf import layouts as L
from crashkit.elf.files import ProgramHeader, read_phdrs, regular_file
from crashkit.errors import MemoryReadError
from crashkit.model.analyze import Mapping, PlacedBy

DT_NULL, DT_DEBUG = 0, 21
PT_DYNAMIC = 2
MAX_DYNAMIC = 512  # entries of PT_DYNAMIC read
MAX_LIBRARIES = 1024

Read = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Placed:
    mappings: tuple[Mapping, ...]
    placed_by: dict[str, PlacedBy]  # path -> "auxv" (the executable) or "link-map"
    notes: tuple[str, ...]


def _file_image(path: str) -> tuple[int, list[ProgramHeader]] | None:
    """(e_entry, program headers) of an ELF file, None when it is not one."""
    try:
        with regular_file(path) as (read, size):
            ehdr = read(0, L.ELF64_EHDR.size)
            phdrs = read_phdrs(read, 0, limit=size)
    except OSError:
        return None
    if not phdrs or len(ehdr) < L.ELF64_EHDR.size:
        return None
    return int(L.ELF64_EHDR.unpack(ehdr)[4]), phdrs


def _maps(path: str, bias: int, phdrs: list[ProgramHeader], page: int) -> list[Mapping]:
    out = []
    for ph in phdrs:
        if ph.type != L.PT_LOAD or ph.memsz == 0:
            continue
        start = (bias + ph.vaddr) & ~(page - 1)
        end = (bias + ph.vaddr + ph.memsz + page - 1) & ~(page - 1)
        out.append(Mapping(start=start, end=end, file_offset=ph.offset & ~(page - 1),
                           path=path))
    return out


def _u64(read: Read, address: int) -> int:
    data = read(address, 8)
    if len(data) < 8:
        raise MemoryReadError("short read", address=address)
    return int(struct.unpack("<Q", data)[0])


def place(read: Read, cstring: Callable[[int], str | None], auxv: dict[str, int],
          exe_path: str, exe_file: str, find: Callable[[str], str | None],
          page: int = 4096) -> Placed:
    """Mappings for the executable (``exe_path`` in the core's terms, read
    from ``exe_file``) and every library on the dynamic linker's list;
    ``find(path)`` is the file on this host for a library's path (or None);
    ``cstring(address)`` a NUL-terminated string of the core's memory."""
    notes: list[str] = []
    image = _file_image(exe_file)
    entry = auxv.get("AT_ENTRY")
    if image is None or entry is None:
        why = "it is not a readable ELF file" if image is None else "the core has no AT_ENTRY"
        return Placed((), {}, (f"no NT_FILE note, and the executable cannot be placed: {why}",))
    e_entry, phdrs = image
    bias = entry - e_entry
    maps = _maps(exe_path, bias, phdrs, page)
    placed: dict[str, PlacedBy] = {exe_path: "auxv"}
    libraries = 0
    try:
        dyn = next((ph for ph in phdrs if ph.type == PT_DYNAMIC), None)
        r_debug = 0
        if dyn is not None:
            raw = read(bias + dyn.vaddr, min(dyn.memsz, MAX_DYNAMIC * 16))
            for tag, value in struct.iter_unpack("<qQ", raw[:len(raw) // 16 * 16]):
                if tag == DT_NULL:
                    break
                if tag == DT_DEBUG:
                    r_debug = value
        if r_debug:
            node = _u64(read, r_debug + 8)  # r_map
            seen: set[int] = set()
            while node and node not in seen and len(seen) < MAX_LIBRARIES:
                seen.add(node)
                l_addr, l_name = _u64(read, node), _u64(read, node + 8)
                name = cstring(l_name) if l_name else None
                node = _u64(read, node + 24)
                if not name or not name.startswith("/") or name == exe_path:
                    continue  # the executable itself, the vDSO (no path)
                on_disk = find(name)
                found = _file_image(on_disk) if on_disk else None
                lib_phdrs = found[1] if found else None
                if lib_phdrs is None:
                    try:
                        lib_phdrs = read_phdrs(read, l_addr)
                    except MemoryReadError:
                        lib_phdrs = None
                if not lib_phdrs:
                    notes.append(f"{name}: on the dynamic linker's list at {l_addr:#x}, but "
                                 "neither its file nor its headers are here")
                    continue
                maps += _maps(name, l_addr, lib_phdrs, page)
                placed[name] = "link-map"
                libraries += 1
        else:
            notes.append("no NT_FILE note, and the dynamic linker's list is not in the core "
                         "(a static program, or DT_DEBUG unset): only the executable is placed")
    except MemoryReadError:
        notes.append("no NT_FILE note, and the dynamic linker's list could not be read from "
                     "the core's memory: only the executable and the libraries before the "
                     "damage are placed")
    notes.insert(0, f"no NT_FILE note: the executable was placed by the auxv (AT_ENTRY) and "
                    f"{'--exe' if exe_file != exe_path else 'its file'}"
                    + (f", and {libraries} libraries by the dynamic linker's list in memory "
                       "(r_debug)" if libraries else ""))
    return Placed(tuple(sorted(maps, key=lambda m: m.start)), placed, tuple(notes))
