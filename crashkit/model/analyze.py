"""The plain data that readers produce and analyses, renderers and templates consume.

Every fact that may be missing from a damaged core is ``None`` (or an empty
tuple) rather than an exception, so a partial core still yields a partial
analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FrameSource = Literal["notes", "elf", "gdb", "scan"]
# What a signal meant (crashkit.analysis.meaning.MEANINGS has each one's title).
MeaningKind = Literal[
    "null-pointer", "near-null", "null-function-pointer", "bad-jump", "wild-pointer",
    "write-read-only", "guard-page", "access-denied", "stack-overflow", "bus-mapped-file",
    "misaligned-access", "bus-error", "assertion", "stack-protector", "heap-corruption",
    "uncaught-exception", "fortify", "abort", "self-signal", "sent-by-kernel",
    "sent-by-process", "illegal-instruction", "breakpoint", "divide-by-zero", "arithmetic",
    "seccomp", "snapshot", "unknown", "other"]
# Whose code a module is (crashkit.analysis.attribution.origin).
Origin = Literal["nginx", "nginx-module", "third-party-module", "library", "program", "system"]
Confidence = Literal["high", "medium", "low", "none"]
AnalysisKind = Literal["crash", "killed", "snapshot"]
FileStatus = Literal["ok", "missing", "unreadable", "not-elf"]
# How a module's file was found (crashkit.elf.locate): the --exe option, its
# build-id in a debug directory's .build-id tree, its path under --sysroot,
# its path on this host, a debuginfod server (--debuginfod), a separate debug
# file of its build-id (symbols, no code), the core itself (the vDSO, which
# no file holds), or not at all.
FoundBy = Literal["exe-option", "build-id", "sysroot", "path", "debuginfod", "debug-file",
                  "core", "missing"]
BuildIdFrom = Literal["memory", "file", "none"]
PlacedBy = Literal["nt-file", "auxv", "link-map", "core"]


@dataclass(frozen=True)
class Mapping:
    """One file-backed mapping from NT_FILE."""

    start: int
    end: int
    file_offset: int  # bytes, not pages
    path: str  # without the kernel's " (deleted)" suffix
    deleted: bool = False  # the file had been unlinked (or replaced) when the core was made


@dataclass(frozen=True)
class FrameRule:
    """How to find a frame's caller at one code address, from the module's
    call frame information: the CFA is ``cfa_register + cfa_offset``."""

    cfa_register: int  # DWARF register number (x86-64: 7 rsp, 6 rbp)
    cfa_offset: int
    saved: tuple[tuple[int, int], ...]  # (register, offset from the CFA) of saved registers


@dataclass(frozen=True)
class Symbol:
    """The result of symbolizing an address against ELF symbol tables."""

    module: str | None  # path of the mapped file, None if the address is in no file mapping
    module_offset: int | None  # offset of the address in that file
    function: str | None  # nearest preceding symbol, None when the module has none
    function_offset: int | None  # address minus the symbol's start
    symbol_table: str | None = None  # ".symtab", ".dynsym", or a debug file's path


@dataclass(frozen=True)
class Frame:
    index: int
    pc: int
    function: str | None
    module: str | None
    module_offset: int | None
    function_offset: int | None = None
    file: str | None = None
    line: int | None = None
    inlined: bool = False
    signal_frame: bool = False
    source: FrameSource = "elf"
    args: tuple[tuple[str, str], ...] = ()
    locals: tuple[tuple[str, str], ...] = ()
    trusted: bool = True  # False in, and beyond, a module whose file is another build
    other_build: bool = False  # this frame's module on disk is another build than the crashed
    elf_symbol: str | None = None  # the ELF symbol covering pc, when gdb named it otherwise
    elf_offset: int | None = None


@dataclass(frozen=True)
class Instruction:
    address: int
    text: str
    function: str | None = None
    offset: int | None = None


@dataclass(frozen=True)
class Access:
    """The faulting memory access, decoded from the faulting instruction."""

    instruction: str
    base: str | None  # the base register ("rdi"), None for an absolute address
    base_value: int | None
    index: str | None
    index_value: int | None
    scale: int
    displacement: int
    width: int | None  # bytes, where the instruction says
    write: bool
    address: int  # base + index * scale + displacement
    text: str  # "dereferenced the pointer value 0x8 in rdi"


@dataclass(frozen=True)
class CrashContext:
    """Around the crashing thread's pc: a disassembly window (from gdb)."""

    pc: int
    instructions: tuple[Instruction, ...]
    faulting: Instruction | None  # the instruction at pc
    trusted: bool = True  # False when decoded from a file that is not the crashed build


@dataclass(frozen=True)
class GdbFrame:
    """One frame as gdb reported it, before crashkit places it in a module."""

    pc: int
    function: str | None  # None where gdb said ``??``
    file: str | None = None
    line: int | None = None
    inlined: bool = False
    signal_frame: bool = False
    args: tuple[tuple[str, str], ...] = ()
    locals: tuple[tuple[str, str], ...] = ()
    level: int | None = None  # gdb's frame number (frames of a deep stack may be skipped)


@dataclass(frozen=True)
class Thread:
    tid: int
    crashed: bool
    registers: dict[str, int]
    pc: int | None
    sp: int | None
    fp: int | None
    cursig: int
    frames: tuple[Frame, ...] = ()
    name: str | None = None


@dataclass(frozen=True)
class SignalInfo:
    number: int
    name: str
    code: int | None
    code_name: str | None
    errno: int | None
    fault_address: int | None
    sender_pid: int | None
    sender_uid: int | None
    description: str  # what the signal and code mean, in words


@dataclass(frozen=True)
class ProcessInfo:
    """NT_PRPSINFO."""

    pid: int
    ppid: int
    uid: int
    gid: int
    fname: str
    args: str
    state: str | None
    args_truncated: bool = False  # the kernel keeps 79 bytes of the arguments


@dataclass(frozen=True)
class Module:
    """A mapped file with its build-ids, one entry per distinct path."""

    path: str
    start: int
    end: int
    build_id: str | None  # read from the core's memory
    file_build_id: str | None  # read from the file on disk at ``path``
    build_id_match: bool | None  # None when either side is unknown
    file_status: FileStatus
    deleted: bool = False
    disk_path: str | None = None  # the file read for it on this host (None: none found)
    found_by: FoundBy = "path"
    # What placed it in the address space: the core's NT_FILE note; without
    # one, the auxv (the executable) or the dynamic linker's list in memory.
    placed_by: PlacedBy = "nt-file"

    @property
    def build_id_from(self) -> BuildIdFrom:
        """Where its build-id is known from: the core's memory (the crashed
        build), else the file found here, else nowhere."""
        return "memory" if self.build_id else "file" if self.file_build_id else "none"


@dataclass(frozen=True)
class CoreFacts:
    """Everything read from a core's headers and notes (no gdb)."""

    path: str
    size: int
    expected_size: int
    truncated: bool
    arch: str
    process: ProcessInfo | None
    signal: SignalInfo | None
    threads: tuple[Thread, ...]
    mappings: tuple[Mapping, ...]
    auxv: dict[str, int]
    exe: str | None
    execfn: str | None
    page_size: int | None
    modules: tuple[Module, ...] = ()
    exec_ranges: tuple[tuple[int, int], ...] = ()  # PT_LOADs with PF_X: where code can be
    sections: int = 0  # e_shnum: the kernel writes none (but for PN_XNUM), gdb's gcore many
    memory_ranges: tuple[tuple[int, int], ...] = ()  # every PT_LOAD: memory the process had
    notes_complete: bool = True  # False when the note segment was cut or damaged
    problems: tuple[str, ...] = ()  # damage seen while reading (bad notes, cut segments)
    # Every PT_LOAD as (start, end, protection "rwx" with "-" for a missing right).
    segments: tuple[tuple[int, int, str], ...] = ()
    # The crashing thread's stack from sp up (64-bit words, at most 16 KiB), for
    # a stack scan when the stack cannot be unwound.
    crash_stack: tuple[int, ...] = ()
    # The crashed host's kernel, from the vDSO's "Linux" note (LINUX_VERSION_CODE:
    # major.minor.patch, the patch capped at 255); None when the core lacks it.
    kernel: str | None = None


@dataclass(frozen=True)
class Meaning:
    """What the signal means, from the signal, si_code, fault address,
    registers, mappings and the runtime's abort machinery on the stack."""

    kind: MeaningKind
    text: str  # in words: "SIGSEGV: a NULL pointer dereference (address 0x0)"
    exception: str | None = None  # an uncaught C++ exception's type, when the frames name it


@dataclass(frozen=True)
class Package:
    """The distribution package that installed a file (dpkg's database)."""

    name: str
    version: str | None
    source: str | None = None  # the source package, when it differs from ``name``
    homepage: str | None = None


@dataclass(frozen=True)
class HostFacts:
    """Facts about the files and processes a core names, read on this host
    (none with --sysroot, where this host is not the crashed one)."""

    packages: dict[str, Package] = field(default_factory=dict)  # by path in the core
    sender_command: str | None = None  # what the signal's sender runs now, if it still exists
    sender_user: str | None = None  # the sender uid's name
    log_lines: tuple[str, ...] = ()  # the crashed pid's last error-log lines
    log_path: str | None = None


ScriptSource = Literal["vm-state", "memory-scan", "cmdline", "config"]


@dataclass(frozen=True)
class ScriptPlace:
    """Where the script that crashed the process may be, with how that is known."""

    text: str  # "content_by_lua(nginx.conf:26)", "/srv/app/job.py"
    file: str | None
    line: int | None
    source: ScriptSource  # memory-scan: a chunk name found in the process's memory
    function: str | None = None  # vm-state: the script's function in that frame
    library: bool = False  # vm-state: a frame of the interpreter's own library (stdlib)


@dataclass(frozen=True)
class ScriptRunFacts:
    """The crashing thread was running a script (see analysis/interpreters)."""

    interpreter: str  # "LuaJIT"
    language: str  # "Lua"
    embedded_by: str  # "ngx_http_lua_module.so", "python3.11"
    handler: str | None  # the embedding code's outermost frame: the phase handler
    places: tuple[ScriptPlace, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """Whose bug it is, in one sentence and as fields."""

    kind: MeaningKind
    summary: str  # the one sentence
    module: str | None  # path of the module at fault (None: nobody's code, or unknown)
    function: str | None
    origin: Origin | None
    confidence: Confidence  # none: no module to blame
    reason: str  # why this module: "first non-system frame, 2 frames below the crash"
    frame: int | None = None  # index of the blamed frame in the crashing thread
    module_offset: int | None = None  # the blamed pc's offset in the module's file
    package: Package | None = None
    report_to: str | None = None  # who should get the bug report
    script: ScriptRunFacts | None = None  # set when a script crashed the process


@dataclass(frozen=True)
class Signature:
    """Groups crashes of one bug: same top frames, same signature."""

    text: str  # "SIGSEGV | mod.so!func | mod.so!caller | nginx!ngx_http_core_content_phase"
    hash: str  # first 16 hex digits of the text's SHA-256
    frames: tuple[str, ...]
    basis: str  # backtrace (from gdb's unwinding), pc (only the crashing pc), none


@dataclass(frozen=True)
class CrashTime:
    """When the process crashed, and how crashkit knows."""

    time: str  # ISO 8601 with the local offset, to the second
    source: str  # "error log" (its "(core dumped)" line) or "core file time"
    age_seconds: int  # how long before the analysis


@dataclass(frozen=True)
class Analysis:
    """What ``crashkit analyze`` reports."""

    core: CoreFacts
    threads: tuple[Thread, ...]
    crash_frame: Frame | None
    crash_module: str | None
    summary: str
    warnings: tuple[str, ...] = field(default_factory=tuple)
    gdb_used: bool = False
    gdb_error: str | None = None
    context: CrashContext | None = None
    cause: str = ""  # why it died, in words (the summary's middle)
    blame: Frame | None = None  # the frame whose code is most likely at fault
    kind: AnalysisKind = "crash"  # killed: by another process
    meaning: Meaning | None = None
    verdict: Verdict | None = None
    signature: Signature | None = None
    host: HostFacts = field(default_factory=HostFacts)
    access: Access | None = None  # the faulting access, from the faulting instruction
    crash_time: CrashTime | None = None

    @property
    def needs_attention(self) -> bool:
        """analyze exits 0 whenever it could read the core: the crash is the input."""
        return False
