"""Name addresses from ELF symbol tables of the files on disk (no gdb).

An address is first placed in a file mapping from NT_FILE (giving the file and
the offset in it), then the file offset is turned into the file's own virtual
address through its PT_LOAD headers, and the nearest preceding function symbol
is looked up in ``.symtab`` (or, for stripped files, a separate debug file
found by build-id, or ``.dynsym``).
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from crashkit.elf import layouts as L
from crashkit.elf.buildid import file_build_id
from crashkit.elf.files import open_regular, read_phdrs, regular_file
from crashkit.model.analyze import FrameRule, Mapping, Symbol

STT_FUNC, STT_GNU_IFUNC = 2, 10
DEFAULT_DEBUG_DIRS = ("/usr/lib/debug",)


def host_path(path: str, sysroot: str | None) -> str:
    """Where a path from the crashed host lives on this host."""
    if sysroot:
        return os.path.join(sysroot, path.lstrip("/"))
    return path


@dataclass(frozen=True)
class _Table:
    starts: list[int]
    entries: list[tuple[int, int, str]]  # (value, size, name), sorted by value
    source: str


class ElfImage:
    """One ELF file on disk: its PT_LOADs and a function table, read once."""

    def __init__(self, path: str, debug_dirs: Sequence[str] = DEFAULT_DEBUG_DIRS) -> None:
        self.path = path
        self._debug_dirs = debug_dirs
        self._loads: list[tuple[int, int, int]] | None = None  # (offset, filesz, vaddr)
        self._table: _Table | None = None
        self._failed = False

    def _load_headers(self) -> list[tuple[int, int, int]]:
        if self._loads is None:
            self._loads = []
            try:
                with regular_file(self.path) as (read, _size):
                    phdrs = read_phdrs(read) or []
            except L.READ_ERRORS:
                self._failed = True
                return self._loads
            self._loads = [(p.offset, p.filesz, p.vaddr) for p in phdrs if p.type == L.PT_LOAD]
        return self._loads

    def missing(self) -> bool:
        """Whether the file cannot be read as an ELF image at all."""
        return not self._load_headers()

    def lowest_vaddr(self) -> int | None:
        """The page where the image's first PT_LOAD starts."""
        loads = self._load_headers()
        return min(v for _o, _f, v in loads) & ~0xFFF if loads else None

    def vaddr_of_offset(self, file_offset: int) -> int | None:
        for offset, filesz, vaddr in self._load_headers():
            if offset <= file_offset < offset + max(filesz, 1):
                return vaddr + (file_offset - offset)
        return None

    def table(self) -> _Table | None:
        if self._table is None and not self._failed:
            self._table = self._read_table()
            if self._table is None:
                self._failed = True
        return self._table

    def _read_table(self) -> _Table | None:
        own = _function_table(self.path, (".symtab",))
        if own is not None:
            return own
        debug = self._debug_file()
        if debug is not None:
            table = _function_table(debug, (".symtab",), debug=True)
            if table is not None:
                return table
        return _function_table(self.path, (".dynsym",))

    def _debug_file(self) -> str | None:
        try:
            result = file_build_id(self.path)
        except OSError:
            return None
        return find_debug_file(result.build_id, self._debug_dirs)

    def lookup(self, vaddr: int) -> tuple[str | None, int | None, str | None]:
        """(function, offset in function, table used) for a virtual address in this file."""
        table = self.table()
        if table is None:
            return None, None, None
        i = bisect.bisect_right(table.starts, vaddr) - 1
        if i < 0:
            return None, None, table.source
        value, size, name = table.entries[i]
        # A sized symbol must cover the address: past its end lies a static
        # function missing from .dynsym, or padding, and naming the neighbour
        # would mislead. Unsized symbols (hand-written assembly) get 64 KiB.
        if (size and vaddr < value + size) or (not size and vaddr - value < 0x10000):
            return name, vaddr - value, table.source
        return None, None, table.source


# Tables already decoded in this process, by the file's identity (device,
# inode, size, mtime, from the descriptor opened): `crashkit collect` analyses
# hundreds of cores of the same programs, and decoding libc's debug file's
# .symtab alone takes ~70 ms. A replaced file has another identity.
_TABLES: dict[tuple[object, ...], _Table | None] = {}
_TABLES_MAX = 32


def _function_table(path: str, names: Iterable[str], debug: bool = False) -> _Table | None:
    names = tuple(names)
    try:
        with os.fdopen(open_regular(path), "rb") as fh:
            st = os.fstat(fh.fileno())
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, names, debug, path)
            if key in _TABLES:
                return _TABLES[key]
            table = _read_function_table(fh, path, names, debug)
    except L.ELF_ERRORS:
        return None
    if len(_TABLES) >= _TABLES_MAX:
        del _TABLES[next(iter(_TABLES))]
    _TABLES[key] = table
    return table


def _read_function_table(fh: BinaryIO, path: str, names: tuple[str, ...],
                         debug: bool) -> _Table | None:
    if os.pread(fh.fileno(), 4, 0) != b"\x7fELF":
        return None  # what pyelftools says of it, as an ELFError
    sections = _sections(fh.fileno())
    if sections is None:  # anything unusual: as pyelftools reads it
        return _function_table_elftools(fh, path, names, debug)
    for name in names:
        section = sections.get(name.encode())
        if section is None or section[0] == SHT_NOBITS:
            continue
        _type, offset, size, link, flags = section
        _ltype, loffset, lsize, _link, lflags = sections[link]
        if (flags | lflags) & SHF_COMPRESSED:
            return _function_table_elftools(fh, path, names, debug)
        if size > MAX_TABLE_BYTES or lsize > MAX_TABLE_BYTES:
            continue  # a hostile or absurd file: not read whole into memory
        strtab = os.pread(fh.fileno(), lsize, loffset)
        data = os.pread(fh.fileno(), size, offset)
        table = _decode_table(strtab, data, name, path, debug)
        if table is not None:
            return table
    return None


SHT_NOBITS = 8
# The largest symbol or string table read (each): real ones are a few MiB
# (libc's .symtab is 0.1 MiB, a browser's debug file's ~150 MiB); a file
# claiming more (a sparse file naming a 10 GiB .symtab) is not decoded, and
# its frames go unnamed rather than costing gigabytes of memory.
MAX_TABLE_BYTES = 256 << 20
SHF_COMPRESSED = 0x800
_SHDR = struct.Struct("<IIQQQQIIQQ")


def _sections(fd: int) -> dict[bytes | int, tuple[int, int, int, int, int]] | None:
    """(type, offset, size, link, flags) of each section by name (the last of a name,
    as pyelftools has it) and by index, read with struct; None for a file
    this does not handle the way pyelftools would (not 64-bit little-endian,
    extended section counts, links or names out of range): those are read by
    pyelftools, as are compressed tables."""
    ehdr = os.pread(fd, L.ELF64_EHDR.size, 0)
    if len(ehdr) < L.ELF64_EHDR.size or ehdr[:4] != b"\x7fELF" or ehdr[4:6] != b"\x02\x01":
        return None
    (_ident, _type, _machine, _version, _entry, _phoff, shoff, _flags, _ehsize, _phentsize,
     _phnum, shentsize, shnum, shstrndx) = L.ELF64_EHDR.unpack(ehdr)
    if shoff == 0:
        return {}
    if shnum == 0 or shentsize != _SHDR.size or shstrndx >= shnum:
        return None
    raw = os.pread(fd, shnum * _SHDR.size, shoff)
    if len(raw) != shnum * _SHDR.size:
        return None
    headers = list(_SHDR.iter_unpack(raw))
    file_size = os.fstat(fd).st_size
    # A compressed section (a debug file's .debug_*) is left to pyelftools
    # only when it is one that is read (see _read_function_table): Debian's
    # debug files compress their DWARF, never their .symtab.
    if any(h[6] >= shnum or (h[1] != SHT_NOBITS and h[4] + h[5] > file_size)
           for h in headers):
        return None
    str_offset, str_size = headers[shstrndx][4], headers[shstrndx][5]
    names = os.pread(fd, str_size + 1, str_offset) if str_size < 1 << 24 else b""
    out: dict[bytes | int, tuple[int, int, int, int, int]] = {}
    for i, (sh_name, sh_type, _f, _a, offset, size, link, _i, _al, _es) in enumerate(headers):
        end = names.find(b"\0", sh_name)
        if sh_name >= len(names) or end < 0:
            return None
        entry = (sh_type, offset, size, link, _f)
        out[i] = entry
        out[names[sh_name:end]] = entry
    return out


def _function_table_elftools(fh: BinaryIO, path: str, names: Iterable[str],
                             debug: bool) -> _Table | None:
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(fh)
    for name in names:
        section = elf.get_section_by_name(name)
        if section is None or section["sh_type"] == "SHT_NOBITS":
            continue
        linked = elf.get_section(section["sh_link"])
        if section["sh_size"] > MAX_TABLE_BYTES or linked["sh_size"] > MAX_TABLE_BYTES:
            continue
        strtab = linked.data()
        data = section.data()
        table = _decode_table(strtab, data, name, path, debug)
        if table is not None:
            return table
    return None


def _decode_table(strtab: bytes, data: bytes, name: str, path: str,
                  debug: bool) -> _Table | None:
    source = f"{name} of {path}" if debug else name
    entries = []
    # Decoded with struct: libc's tables hold thousands of symbols
    # and pyelftools builds an object for each.
    usable = len(data) - len(data) % L.ELF64_SYM.size
    for st_name, st_info, _other, shndx, value, size in L.ELF64_SYM.iter_unpack(
            data[:usable]):
        stype = st_info & 0xF
        if shndx == 0 or value == 0 or stype not in (STT_FUNC, STT_GNU_IFUNC):
            continue
        end = strtab.find(b"\0", st_name)
        # .symtab keeps version tags (memcpy@@GLIBC_2.14); gdb does not.
        sym = strtab[st_name:end].split(b"@", 1)[0]
        entries.append((value, size, sym.decode("utf-8", "replace")))
    if entries:
        # Prefer the sized, global-looking name among aliases at one address.
        entries.sort(key=lambda e: (e[0], -e[1], e[2].startswith("_"), e[2]))
        dedup: list[tuple[int, int, str]] = []
        for e in entries:
            if not dedup or dedup[-1][0] != e[0]:
                dedup.append(e)
        return _Table([e[0] for e in dedup], dedup, source)
    return None


def find_debug_file(build_id: str | None, debug_dirs: Sequence[str]) -> str | None:
    """The separate debug file for ``build_id`` in gdb's layout
    (DIR/.build-id/xx/rest.debug), checked to carry that build-id."""
    if not build_id or len(build_id) < 4:
        return None
    for d in debug_dirs:
        candidate = os.path.join(d, ".build-id", build_id[:2], build_id[2:] + ".debug")
        try:
            if file_build_id(candidate).build_id == build_id:
                return candidate
        except OSError:
            continue
    return None


class Symbolizer:
    """Turns addresses of the crashed process into :class:`Symbol` values.

    ``other_builds`` maps the modules whose file on disk is another build than
    the crashed one to the crashed build-id: when a debug file for that
    build-id is found, it is read instead of the file (see :meth:`exact`)."""

    def __init__(self, mappings: Sequence[Mapping], *, sysroot: str | None = None,
                 debug_dirs: Sequence[str] = DEFAULT_DEBUG_DIRS,
                 path_map: dict[str, str] | None = None,
                 other_builds: dict[str, str] | None = None) -> None:
        self._maps = sorted(mappings, key=lambda m: m.start)
        self._starts = [m.start for m in self._maps]
        self._sysroot = sysroot
        self._debug_dirs = tuple(debug_dirs)
        self._path_map = path_map or {}
        self._images: dict[str, ElfImage] = {}
        self._other_builds = other_builds or {}
        self._exact: set[str] = set()
        self._lowest: dict[str, int] = {}
        for m in self._maps:
            self._lowest.setdefault(m.path, m.start)

    def mapping_of(self, address: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._maps[i].end:
            return self._maps[i]
        return None

    def disk_path(self, core_path: str) -> str:
        if core_path in self._path_map:
            return self._path_map[core_path]
        return host_path(core_path, self._sysroot)

    def image(self, core_path: str) -> ElfImage:
        if core_path not in self._images:
            path = self.disk_path(core_path)
            debug = find_debug_file(self._other_builds.get(core_path), self._debug_dirs)
            if debug is not None:  # the crashed build's own symbols and headers
                path = debug
                self._exact.add(core_path)
            self._images[core_path] = ElfImage(path, self._debug_dirs)
        return self._images[core_path]

    def exact(self, core_path: str) -> bool:
        """Whether a module of another build on disk is read from a debug file
        of the crashed build instead (so its names can be trusted)."""
        self.image(core_path)
        return core_path in self._exact

    def symbolize(self, address: int) -> Symbol:
        m = self.mapping_of(address)
        if m is None:
            return Symbol(None, None, None, None)
        file_offset = address - m.start + m.file_offset
        img = self.image(m.path)
        if m.path in self._exact:
            # A debug file's PT_LOADs keep their addresses but not their file
            # offsets: place the address by the load bias instead.
            low = img.lowest_vaddr()
            vaddr = address - (self._lowest[m.path] - low) if low is not None else None
        else:
            vaddr = img.vaddr_of_offset(file_offset)
        if vaddr is None:
            return Symbol(m.path, file_offset, None, None)
        function, offset, table = img.lookup(vaddr)
        return Symbol(m.path, file_offset, function, offset, table)

    def code_before(self, address: int, size: int) -> bytes | None:
        """The ``size`` bytes of a module's file that end at ``address`` (the
        code before a return address), or None: in no file, in a module of
        another build on disk (its bytes are not the crashed code), unreadable."""
        m = self.mapping_of(address - size)
        if m is None or address > m.end or m.path in self._other_builds:
            return None
        offset = address - size - m.start + m.file_offset
        try:
            with regular_file(self.disk_path(m.path)) as (read, _size):
                data = read(offset, size)
        except OSError:
            return None
        return data if len(data) == size else None

    def frame_rule(self, address: int) -> FrameRule | None:
        """The call frame information row for a code address (see elf/cfi)."""
        m = self.mapping_of(address)
        if m is None or m.path in self._other_builds:
            return None
        vaddr = self.image(m.path).vaddr_of_offset(address - m.start + m.file_offset) \
            if m.path not in self._exact else None
        if vaddr is None:
            return None
        from crashkit.elf.cfi import frame_rule

        return frame_rule(self.disk_path(m.path), vaddr)
