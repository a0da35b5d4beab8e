"""Read an ELF core's headers and notes (pyelftools plus the layouts it lacks).

Reads only the ELF header, the program headers, the note segment and the few
pages that hold mapped files' ELF headers, so time and memory do not grow with
the size of the core. Damage is recorded in ``CoreFacts.problems`` and reading
goes on: a core cut short still yields every note it holds.
"""

from __future__ import annotations

import bisect
import os
import re
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from crashkit.elf import layouts as L
from crashkit.elf.buildid import BuildIdResult, build_id_from_reader
from crashkit.elf.files import ProgramHeader, open_regular, parse_phdrs
from crashkit.errors import CoreFormatError, InputError, MemoryReadError, UnsupportedCoreError
from crashkit.model import signals
from crashkit.model.analyze import CoreFacts, Mapping, ProcessInfo, SignalInfo, Thread

if TYPE_CHECKING:  # the codecs load only for a compressed core
    from crashkit.elf.compressed import FrontImage

# Refuse to read more than this much of a note segment: a real one holds a few
# KiB per thread, so even 10,000 threads fit.
MAX_NOTES_BYTES = 128 * 1024 * 1024
DELETED = " (deleted)"
PF_X, PF_W, PF_R = 1, 2, 4


def _rwx(flags: int) -> str:
    return "".join(c if flags & bit else "-" for c, bit in (("r", PF_R), ("w", PF_W), ("x", PF_X)))


_COMPRESSED_MAGIC = {
    b"\x28\xb5\x2f\xfd": ("zstd", "zstd -d"),
    b"\xfd7zXZ": ("xz", "xz -d"),
    b"\x1f\x8b": ("gzip", "gzip -d"),
    b"\x04\x22\x4d\x18": ("lz4", "lz4 -d"),
    b"BZh": ("bzip2", "bzip2 -d"),
}


@dataclass(frozen=True)
class RawNote:
    name: str
    type: int
    desc: bytes
    offset: int  # file offset of the note header


def open_core_file(path: str) -> BinaryIO:
    """Open ``path`` for reading, turning every OS-level problem into an InputError."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot stat: {exc.strerror}", path=path) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError("is a directory, not a core file", path=path)
    if not stat.S_ISREG(st.st_mode):
        raise InputError("is not a regular file", path=path)
    try:  # checked again on the descriptor: the path may have changed since stat()
        return os.fdopen(open_regular(path), "rb")
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", path=path) from None


_EHDR_FIELDS = ("e_ident", "e_type", "e_machine", "e_version", "e_entry", "e_phoff", "e_shoff",
                "e_flags", "e_ehsize", "e_phentsize", "e_phnum", "e_shentsize", "e_shnum",
                "e_shstrndx")
# struct elf_prpsinfo of a 64-bit core (pyelftools' Elf_Prpsinfo for ELFCLASS64).
_PRPSINFO = struct.Struct("<B1sBB4xQIIIIII16s80s")


class _Prpsinfo(NamedTuple):
    pr_state: int
    pr_sname: bytes
    pr_zomb: int
    pr_nice: int
    pr_flag: int
    pr_uid: int
    pr_gid: int
    pr_pid: int
    pr_ppid: int
    pr_pgrp: int
    pr_sid: int
    pr_fname: bytes
    pr_psargs: bytes


class _Elf:
    """The ELF header of a core, decoded with struct: pyelftools (~0.1 s to
    import) is loaded only for the rare core with PN_XNUM program headers."""

    def __init__(self, header: dict[str, int], fh: BinaryIO) -> None:
        self.header = header
        self._fh = fh

    def num_segments(self) -> int:
        if self.header["e_phnum"] < 0xFFFF:
            return self.header["e_phnum"]
        from elftools.elf.elffile import ELFFile

        return int(ELFFile(self._fh).num_segments())


class CoreFile:
    """An open ELF core. Use as a context manager."""

    def __init__(self, path: str, *, front: FrontImage | None = None) -> None:
        """``front``: read a compressed core through the front of its
        stream (see :class:`crashkit.elf.compressed.FrontImage`), at
        ``path``'s name; without it a compressed file is refused."""
        self.path = path
        self._front = front
        self.not_read = 0  # memory reads past a compressed core's front
        self._fh = open_core_file(path)
        try:
            if front is None:
                self.size = os.fstat(self._fh.fileno()).st_size
            else:
                # Unknown until decoded: reads are bounded by the stream itself.
                self.size = front.known_size() or _UNKNOWN_SIZE
            self._check_ident()
            self._elf = self._parse_elf()
            self.arch = self._layout()
            loads, self.notes_segments = self._read_segments()
        except BaseException:
            self._fh.close()
            raise
        self.segments = loads + self.notes_segments
        self._loads = sorted(loads, key=lambda s: s.vaddr)
        self._load_starts = [s.vaddr for s in self._loads]

    # -- context manager -------------------------------------------------
    def __enter__(self) -> CoreFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._fh.close()
        if self._front is not None:
            self._front.close()

    # -- validation --------------------------------------------------------
    def _fail(self, message: str, offset: int | None = None) -> CoreFormatError:
        return CoreFormatError(message, path=self.path, offset=offset)

    def _check_ident(self) -> None:
        if self.size == 0:
            raise self._fail("empty file (0 bytes), not a core")
        head = self._pread(0, 64)
        if self._front is not None and len(head) < 64 and \
                (head.startswith(b"\x7fELF") or b"\x7fELF".startswith(head)):
            self._front_head(len(head))
        for magic, (kind, cmd) in _COMPRESSED_MAGIC.items():
            if head.startswith(magic):
                raise self._fail(f"{kind}-compressed file; decompress it first ({cmd})")
        if len(head) < 4 and b"\x7fELF".startswith(head):
            raise self._fail(f"cut inside the ELF header ({self.size} bytes of 64)")
        if not head.startswith(b"\x7fELF"):
            raise self._fail(f"not an ELF file (it starts with bytes {head[:4].hex(' ')})")
        if len(head) < 20:
            raise self._fail(f"cut inside the ELF header ({self.size} bytes of 64)")
        if head[4] != 2:
            raise UnsupportedCoreError(
                "32-bit ELF (ELFCLASS32); crashkit reads 64-bit x86-64 and aarch64 cores",
                path=self.path)
        if head[5] != 1:
            raise UnsupportedCoreError(
                "big-endian ELF; crashkit reads little-endian x86-64 and aarch64 cores",
                path=self.path)
        e_type = int.from_bytes(head[16:18], "little")
        if e_type != 4:
            kind = {1: "a relocatable object (ET_REL)", 2: "an executable (ET_EXEC)",
                    3: "a shared object or PIE executable (ET_DYN)"}.get(e_type, f"e_type {e_type}")
            raise self._fail(f"an ELF file but not a core: it is {kind}")
        machine = self.machine = int.from_bytes(head[18:20], "little")
        if machine not in L.ARCHES:
            name = L.MACHINE_NAMES.get(machine, f"e_machine {machine}")
            raise UnsupportedCoreError(
                f"core of an unsupported architecture ({name}); crashkit reads x86-64 and aarch64",
                path=self.path)
        if len(head) < 64:
            raise self._fail(f"cut inside the ELF header ({self.size} bytes of 64)")

    def _front_head(self, got: int) -> None:
        """A compressed core whose stream holds less than an ELF header."""
        assert self._front is not None
        front = self._front
        if got == 0:
            raise self._fail(f"{front.problem or f'the {front.kind} stream holds 0 bytes'}: "
                             "not a core")
        raise self._fail(f"cut inside the ELF header ({got} bytes of 64; "
                         f"{front.problem or f'the {front.kind} stream ends there'})")

    def _parse_elf(self) -> _Elf:
        return _Elf(dict(zip(_EHDR_FIELDS, L.ELF64_EHDR.unpack(self._pread(0, 64)),
                             strict=True)), self._fh)

    def _layout(self) -> L.ArchLayout:
        return L.ARCHES[self.machine]

    def _count_from_notes(self, phoff: int) -> int | None:
        """With over 65534 segments the count lives in a section header at the
        end of the file, the first thing a cut loses. The kernel writes the
        note segment first and its data right after the program headers, so
        the first header tells how many there are."""
        if self._elf.header["e_phnum"] != 0xFFFF:
            return None
        first = parse_phdrs(self._pread(phoff, L.ELF64_PHDR.size))
        if not first or first[0].type != L.PT_NOTE or first[0].offset <= phoff:
            return None
        count = (first[0].offset - phoff) // L.ELF64_PHDR.size
        return count if count >= 0xFFFF else None

    def _read_segments(self) -> tuple[list[ProgramHeader], list[ProgramHeader]]:
        ehdr = self._elf.header
        phoff, phentsize = ehdr["e_phoff"], ehdr["e_phentsize"]
        if phentsize != L.ELF64_PHDR.size:
            raise self._fail(f"program header entries are {phentsize} bytes, not 56")
        try:
            count = int(self._elf.num_segments())
        except L.ELF_ERRORS as exc:
            derived = self._count_from_notes(phoff)
            if derived is None:
                raise self._fail(f"cannot read the program header count: {exc}") from None
            count = derived
        if count == 0:
            raise self._fail("core has no program headers")
        end = phoff + count * phentsize
        if self._front is not None:
            self._front.allow(end)
        if end > self.size:
            raise self._fail(
                f"cut inside its program headers: they end at byte {end}, the file has {self.size}",
                offset=phoff)
        # Decoded with struct rather than pyelftools' per-segment objects: a
        # core can have tens of thousands of PT_LOADs and this stays linear and fast.
        loads: list[ProgramHeader] = []
        notes: list[ProgramHeader] = []
        for ph in parse_phdrs(self._pread(phoff, count * phentsize)):
            if ph.type == L.PT_LOAD:
                loads.append(ph)
            elif ph.type == L.PT_NOTE:
                notes.append(ph)
        if not notes:
            raise self._fail("core has no PT_NOTE segment, so no threads, signal or mappings")
        if self._front is not None:
            self._front.allow(max(n.offset + min(n.filesz, MAX_NOTES_BYTES) for n in notes))
        return loads, notes

    # -- raw access --------------------------------------------------------
    def _pread(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset``; short or empty past the end. Offsets
        come from the file itself, so they may be absurd."""
        if offset < 0 or size <= 0 or offset >= self.size:
            return b""
        if self._front is not None:
            from crashkit.elf.compressed import NotDecompressed

            try:
                return self._front.read(offset, min(size, self.size - offset))
            except NotDecompressed as exc:
                raise _NotRead(str(exc)) from None
        return os.pread(self._fh.fileno(), min(size, self.size - offset), offset)

    @property
    def expected_size(self) -> int:
        end = max((s.offset + s.filesz for s in self.segments), default=0)
        ehdr = self._elf.header
        if ehdr["e_shoff"]:  # e_shnum may be 0 with PN_XNUM: header 0 is still there
            end = max(end, ehdr["e_shoff"] + max(ehdr["e_shnum"], 1) * ehdr["e_shentsize"])
        return max(end, int(ehdr["e_phoff"]) + len(self.segments) * L.ELF64_PHDR.size)

    def read_memory(self, address: int, size: int) -> bytes:
        """Bytes of the crashed process's memory, or MemoryReadError."""
        i = bisect.bisect_right(self._load_starts, address) - 1
        if i < 0:
            raise MemoryReadError(f"address {address:#x} is in no segment", address=address)
        seg = self._loads[i]
        # Segments are sorted by start, and never overlap in a kernel core.
        if not (seg.vaddr <= address and address + size <= seg.vaddr + seg.memsz):
            raise MemoryReadError(f"address {address:#x} is in no segment", address=address)
        rel = address - seg.vaddr
        if rel + size > seg.filesz:
            raise MemoryReadError(f"address {address:#x} was not dumped", address=address)
        try:
            data = self._pread(seg.offset + rel, size)
        except _NotRead as exc:
            self.not_read += 1
            raise MemoryReadError(f"address {address:#x}: {exc}", address=address) from None
        if len(data) < size:
            raise MemoryReadError(
                f"address {address:#x} lies past the end of the truncated core", address=address)
        return data

    def search_memory(self, pattern: re.Pattern[bytes], *, budget: int = 256 << 20,
                      limit: int = 32, chunk: int = 4 << 20, overlap: int = 512
                      ) -> list[re.Match[bytes]]:
        """Matches of ``pattern`` in the dumped bytes of the writable segments
        (the heap and data, where an interpreter keeps its strings), at most
        ``limit`` distinct ones and ``budget`` bytes read: a bounded cost on
        a core of any size. A match must be shorter than ``overlap``."""
        seen: dict[bytes, re.Match[bytes]] = {}
        for seg in self._loads:
            if not seg.flags & PF_W or budget <= 0:
                continue
            size = min(seg.filesz, max(self.size - seg.offset, 0), budget)
            pos = 0
            while pos < size and len(seen) < limit:
                try:
                    data = self._pread(seg.offset + pos, min(chunk + overlap, size - pos))
                except _NotRead:
                    self.not_read += 1
                    return list(seen.values())
                if not data:
                    break
                for m in pattern.finditer(data):
                    seen.setdefault(m.group(0), m)
                    if len(seen) >= limit:
                        break
                pos += chunk
            budget -= size
        return list(seen.values())

    def stack_words(self, sp: int, size: int) -> tuple[int, ...]:
        """The 64-bit words from ``sp`` upwards, as far as the dumped stack
        goes (at most ``size`` bytes); () when sp's page was not dumped."""
        i = bisect.bisect_right(self._load_starts, sp) - 1
        if i < 0:
            return ()
        seg = self._loads[i]
        size = min(size, seg.vaddr + seg.memsz - sp) & ~7
        while size > 0:
            try:
                data = self.read_memory(sp, size)
            except MemoryReadError:
                size = (size // 2) & ~7  # cut short: try what is there
                continue
            return struct.unpack(f"<{size // 8}Q", data)
        return ()

    def read_cstring(self, address: int, limit: int = 4096) -> str | None:
        out = bytearray()
        while len(out) < limit:
            # Read up to the end of the page, so one read never crosses into an absent page.
            chunk = min(4096 - (address + len(out)) % 4096, limit - len(out))
            try:
                data = self.read_memory(address + len(out), chunk)
            except MemoryReadError:
                return None
            nul = data.find(b"\0")
            if nul >= 0:
                out += data[:nul]
                return out.decode("utf-8", "replace")
            out += data
        return out.decode("utf-8", "replace")

    # -- notes ---------------------------------------------------------------
    def iter_notes(self, problems: list[str]) -> Iterator[RawNote]:
        """Walk the note segments with bounds checks on every size field."""
        for seg in self.notes_segments:
            want = seg.filesz
            if want > MAX_NOTES_BYTES:
                problems.append(f"note segment claims {want} bytes; reading the first "
                                f"{MAX_NOTES_BYTES}")
                want = MAX_NOTES_BYTES
            data = self._pread(seg.offset, want)
            if len(data) < want:
                problems.append(f"note segment cut by truncation: {len(data)} of {want} bytes "
                                "present")
            yield from self._walk_notes(data, seg.offset, problems)

    @staticmethod
    def _walk_notes(data: bytes, base: int, problems: list[str]) -> Iterator[RawNote]:
        pos, end = 0, len(data)
        while pos + 12 <= end:
            namesz, descsz, ntype = L.NOTE_HEADER.unpack_from(data, pos)
            name_end = pos + 12 + namesz
            desc_start = pos + 12 + ((namesz + 3) & ~3)
            desc_end = desc_start + descsz
            if name_end > end or desc_end > end:
                problems.append(
                    f"note at file offset {base + pos:#x} (type {ntype:#x}) claims "
                    f"{namesz}+{descsz} bytes but only {end - pos - 12} remain; notes after it "
                    "are lost")
                return
            name = data[pos + 12:name_end].split(b"\0", 1)[0].decode("ascii", "replace")
            yield RawNote(name, ntype, data[desc_start:desc_end], base + pos)
            pos = desc_start + ((descsz + 3) & ~3)

    # -- facts ---------------------------------------------------------------
    def facts(self) -> CoreFacts:
        problems: list[str] = []
        threads: list[Thread] = []
        process: ProcessInfo | None = None
        siginfo: SignalInfo | None = None
        auxv: dict[str, int] = {}
        mappings: list[Mapping] = []
        page_size: int | None = None
        prstatus_seen = 0
        before = len(problems)
        for note in self.iter_notes(problems):
            if note.name not in ("CORE", "LINUX"):
                continue
            try:
                if note.type == L.NT_PRSTATUS and note.name == "CORE":
                    prstatus_seen += 1
                    # The kernel writes the thread that took the signal first;
                    # if that note is unreadable, no other thread is it.
                    threads.append(self._prstatus(note, first=prstatus_seen == 1))
                elif note.type == L.NT_PRPSINFO and process is None:
                    process = self._prpsinfo(note)
                elif note.type == L.NT_SIGINFO and siginfo is None:
                    siginfo = self._siginfo(note)
                elif note.type == L.NT_AUXV and not auxv:
                    auxv = self._auxv(note)
                elif note.type == L.NT_FILE and not mappings:
                    page_size, mappings = self._nt_file(note)
            except _BadNote as exc:
                problems.append(f"note at file offset {note.offset:#x}: {exc}")
        notes_complete = len(problems) == before
        if siginfo is None and threads:
            # No NT_SIGINFO (gcore, old kernels): pr_cursig still names the signal.
            cursig = threads[0].cursig
            if cursig:
                siginfo = SignalInfo(cursig, signals.signal_name(cursig), None, None, None,
                                     None, None, None,
                                     signals.describe(cursig, None, None, None, None))
        if not threads and process is None and siginfo is None and not mappings:
            raise self._fail("no readable notes: the core is cut or damaged before its first "
                             "note ends" + (f" ({problems[0]})" if problems else ""))
        if not threads:
            problems.append("no NT_PRSTATUS note: no thread registers")
        exe = self._exe_path(auxv, mappings)
        execfn = self.read_cstring(auxv["AT_EXECFN"]) if "AT_EXECFN" in auxv else None
        if exe is None and execfn and execfn.startswith("/"):
            # Without NT_FILE, the path given to execve() is the best guess; a
            # relative one would be resolved against the analyst's directory.
            exe = execfn
        if not mappings:
            problems.append("no NT_FILE note: the mapped files are unknown, so the executable "
                            "and libraries gdb reads cannot be checked against the crashed "
                            "build")
        expected = self.expected_size
        if self._front is not None:
            self._front_size(expected, problems)
        truncated = self.size < expected
        if truncated:
            problems.append(f"core is truncated: {self.size} of {expected} bytes present "
                            "(RLIMIT_CORE, a full disk, or an interrupted copy)")
        return CoreFacts(
            sections=int(self._elf.header["e_shnum"]),
            path=os.path.abspath(self.path), size=self.size, expected_size=expected,
            truncated=truncated,
            arch=self.arch.name, process=process, signal=siginfo, threads=tuple(threads),
            mappings=tuple(mappings), auxv=auxv, exe=exe, execfn=execfn, page_size=page_size,
            exec_ranges=tuple((s.vaddr, s.vaddr + s.memsz) for s in self._loads
                              if s.flags & PF_X),
            memory_ranges=tuple((s.vaddr, s.vaddr + s.memsz) for s in self._loads),
            segments=tuple((s.vaddr, s.vaddr + s.memsz, _rwx(s.flags)) for s in self._loads),
            notes_complete=notes_complete,
            problems=tuple(problems))

    def _prstatus(self, note: RawNote, *, first: bool) -> Thread:
        arch = self.arch
        if len(note.desc) < arch.prstatus_size:
            raise _BadNote(f"NT_PRSTATUS is {len(note.desc)} bytes, expected "
                           f"{arch.prstatus_size} for {arch.name}")
        _signo, _code, _errno, cursig, _pend, _hold, pid, _ppid, _pgrp, _sid = (
            L.PRSTATUS_HEAD.unpack_from(note.desc, 0))
        values = arch.regs_struct.unpack_from(note.desc, L.PRSTATUS_REGS_OFFSET)
        regs = dict(zip(arch.registers, values, strict=True))
        return Thread(tid=pid, crashed=first, registers=regs, pc=regs[arch.pc],
                      sp=regs[arch.sp], fp=regs[arch.fp], cursig=cursig)

    def _prpsinfo(self, note: RawNote) -> ProcessInfo:
        st = _PRPSINFO
        if len(note.desc) < st.size:
            raise _BadNote(f"NT_PRPSINFO is {len(note.desc)} bytes, expected {st.size}")
        info = _Prpsinfo(*st.unpack_from(note.desc))

        def text(value: bytes | str) -> str:
            raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
            return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()

        sname = text(info.pr_sname)
        raw_args = info.pr_psargs if isinstance(info.pr_psargs, bytes) else \
            info.pr_psargs.encode("utf-8", "surrogateescape")
        # fs/binfmt_elf.c fill_psinfo copies at most ELF_PRARGSZ - 1 = 79 bytes.
        truncated = len(raw_args.split(b"\0", 1)[0].rstrip(b" ")) >= 79
        return ProcessInfo(pid=info.pr_pid, ppid=info.pr_ppid, uid=info.pr_uid,
                           gid=info.pr_gid, fname=text(info.pr_fname),
                           args=text(info.pr_psargs), state=sname or None,
                           args_truncated=truncated)

    def _siginfo(self, note: RawNote) -> SignalInfo:
        if len(note.desc) < 24:
            raise _BadNote(f"NT_SIGINFO is {len(note.desc)} bytes, expected 128")
        signo, errno, code = L.SIGINFO_HEAD.unpack_from(note.desc, 0)
        fault = sender = sender_uid = None
        if signals.has_fault_address(signo, code):
            (fault,) = L.SIGINFO_ADDR.unpack_from(note.desc, 16)
        elif signals.has_sender(code):
            sender, sender_uid = L.SIGINFO_KILL.unpack_from(note.desc, 16)
        return SignalInfo(
            number=signo, name=signals.signal_name(signo), code=code,
            code_name=signals.code_name(signo, code), errno=errno, fault_address=fault,
            sender_pid=sender, sender_uid=sender_uid,
            description=signals.describe(signo, code, fault, sender, sender_uid))

    @staticmethod
    def _auxv(note: RawNote) -> dict[str, int]:
        out: dict[str, int] = {}
        usable = len(note.desc) - len(note.desc) % 16
        for key, value in L.AUXV_ENTRY.iter_unpack(note.desc[:usable]):
            if key == 0:  # AT_NULL
                break
            out[L.AUXV_NAMES.get(key, f"AT_{key}")] = value
        return out

    @staticmethod
    def _nt_file(note: RawNote) -> tuple[int, list[Mapping]]:
        # NT_FILE: count, page size, count * (start, end, page offset), then
        # count NUL-terminated names (fs/binfmt_elf.c: fill_files_note).
        # pyelftools' Elf_Nt_File trusts the count; this checks it against the size.
        desc = note.desc
        if len(desc) < 16:
            raise _BadNote("NT_FILE is too short for its header")
        count, page_size = L.NT_FILE_HEAD.unpack_from(desc, 0)
        table_end = 16 + count * 24
        if table_end > len(desc):
            raise _BadNote(f"NT_FILE claims {count} mappings but holds room for "
                           f"{(len(desc) - 16) // 24}")
        names = desc[table_end:].split(b"\0")
        if len(names) < count:
            raise _BadNote(f"NT_FILE has {count} mappings but only {len(names)} names")
        out = []
        for i, (start, end, pgoff) in enumerate(
                L.NT_FILE_ENTRY.iter_unpack(desc[16:table_end])):
            name = names[i].decode("utf-8", "surrogateescape")
            # The kernel's d_path() marks unlinked files; an upgraded package
            # leaves exactly this behind.
            deleted = name.endswith(DELETED)
            out.append(Mapping(start, end, pgoff * page_size, name.removesuffix(DELETED),
                               deleted))
        return page_size, out

    @staticmethod
    def _exe_path(auxv: dict[str, int], mappings: list[Mapping]) -> str | None:
        # The executable is the file mapped where AT_PHDR (or AT_ENTRY) points.
        for key in ("AT_PHDR", "AT_ENTRY"):
            addr = auxv.get(key)
            if addr is None:
                continue
            for m in mappings:
                if m.start <= addr < m.end:
                    return m.path
        return None

    def _front_size(self, expected: int, problems: list[str]) -> None:
        """The decompressed size of a core read through its front: known,
        found by decoding on to the expected size (a stream that ends within
        the front tells its size), else taken as the expected size (said so)."""
        assert self._front is not None
        front = self._front
        if front.known_size() is None:
            front.read(min(expected, front.budget - 1), 1)  # meet the end, or pass it
        known = front.known_size()
        if front.problem:
            problems.append(f"{front.problem} (the core's own bytes past that are lost)")
        if known is None:
            self.size = expected
            problems.append(
                f"the {front.kind} stream does not record its decompressed size, and only its "
                f"first {front.budget >> 20} MiB were decompressed: whether the core is "
                "truncated was not checked (analyze with gdb decompresses it whole)")
        else:
            self.size = known

    def note_not_read(self) -> str | None:
        """What reads of a compressed core's memory past its front left out."""
        if self._front is None or not self.not_read:
            return None
        return (f"{self.not_read} read(s) of the crashed process's memory lay past the first "
                f"{self._front.budget >> 20} MiB of the {self._front.kind}-compressed core, "
                "which --no-gdb leaves compressed: the facts they give (build-ids read from "
                "the core, the command's file name, the stack scan) are missing; analyze "
                "with gdb decompresses the core whole")

    def elf_build_id_at(self, address: int) -> BuildIdResult:
        """Build-id of the ELF image whose first page is at ``address`` in the core."""
        return build_id_from_reader(self.read_memory, base=address)


class _BadNote(Exception):
    pass


class _NotRead(Exception):
    """A read past the decompressed front of a compressed core."""


# A compressed core's size before it is known: reads are bounded by the stream.
_UNKNOWN_SIZE = 1 << 63
