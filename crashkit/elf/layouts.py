"""Byte layouts of the Linux core notes that pyelftools does not describe.

pyelftools knows Elf_Nhdr, NT_PRPSINFO and NT_FILE; NT_PRSTATUS, NT_SIGINFO and
NT_AUXV are laid out here, per architecture, after the kernel's
include/uapi/linux/elfcore.h (struct elf_prstatus), arch/*/include/uapi/asm/
ptrace.h (the general registers) and include/uapi/asm-generic/siginfo.h.
Only the layout lives here; meaning lives in :mod:`crashkit.model.signals`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from elftools.common.exceptions import ELFError

# Note types (include/uapi/linux/elf.h).
NT_PRSTATUS = 1
NT_FPREGSET = 2
NT_PRPSINFO = 3
NT_AUXV = 6
NT_SIGINFO = 0x53494749
NT_FILE = 0x46494C45
NT_GNU_BUILD_ID = 3

EM_X86_64 = 62
EM_AARCH64 = 183

PT_LOAD = 1
PT_NOTE = 4

# struct elf_prstatus on 64-bit Linux: elf_siginfo (12), pr_cursig (2) + pad,
# sigpend and sighold (8 each), pid/ppid/pgrp/sid (4 each), four timevals (16
# each), then the general registers at offset 112.
PRSTATUS_HEAD = struct.Struct("<iiihxxQQiiii")
PRSTATUS_REGS_OFFSET = 112

# siginfo_t: si_signo, si_errno, si_code, padding, then the union at 16.
SIGINFO_HEAD = struct.Struct("<iii4x")
SIGINFO_ADDR = struct.Struct("<Q")  # _sigfault.si_addr at 16
SIGINFO_KILL = struct.Struct("<iI")  # _kill.si_pid, si_uid at 16

NOTE_HEADER = struct.Struct("<III")  # namesz, descsz, type
AUXV_ENTRY = struct.Struct("<QQ")
NT_FILE_HEAD = struct.Struct("<QQ")
NT_FILE_ENTRY = struct.Struct("<QQQ")

# Auxiliary vector keys worth naming (include/uapi/linux/auxvec.h).
AUXV_NAMES: dict[int, str] = {
    3: "AT_PHDR", 4: "AT_PHENT", 5: "AT_PHNUM", 6: "AT_PAGESZ", 7: "AT_BASE",
    8: "AT_FLAGS", 9: "AT_ENTRY", 11: "AT_UID", 12: "AT_EUID", 13: "AT_GID",
    14: "AT_EGID", 15: "AT_PLATFORM", 16: "AT_HWCAP", 17: "AT_CLKTCK", 23: "AT_SECURE",
    24: "AT_BASE_PLATFORM", 25: "AT_RANDOM", 26: "AT_HWCAP2", 27: "AT_RSEQ_FEATURE_SIZE",
    28: "AT_RSEQ_ALIGN", 29: "AT_HWCAP3", 30: "AT_HWCAP4", 31: "AT_EXECFN",
    33: "AT_SYSINFO_EHDR", 51: "AT_MINSIGSTKSZ",
}

# What reading a malformed ELF with pyelftools or os.pread can raise: offsets
# and counts come from the file, so they may be past its end or past 2**63.
READ_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, EOFError, OverflowError,
                                            AttributeError, KeyError, IndexError)
ELF_ERRORS: tuple[type[Exception], ...] = (ELFError, *READ_ERRORS)

ELF64_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
ELF64_PHDR = struct.Struct("<IIQQQQQQ")
ELF64_SYM = struct.Struct("<IBBHQQ")


@dataclass(frozen=True)
class ArchLayout:
    name: str
    registers: tuple[str, ...]  # pr_reg in order, 8 bytes each
    pc: str
    sp: str
    fp: str

    @property
    def regs_struct(self) -> struct.Struct:
        return struct.Struct(f"<{len(self.registers)}Q")

    @property
    def prstatus_size(self) -> int:
        return PRSTATUS_REGS_OFFSET + 8 * len(self.registers)


X86_64 = ArchLayout(
    "x86-64",
    # struct user_regs_struct, arch/x86/include/asm/user_64.h
    ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
     "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
     "gs_base", "ds", "es", "fs", "gs"),
    pc="rip", sp="rsp", fp="rbp",
)

AARCH64 = ArchLayout(
    "aarch64",
    # struct user_pt_regs, arch/arm64/include/uapi/asm/ptrace.h
    (*tuple(f"x{i}" for i in range(31)), "sp", "pc", "pstate"),
    pc="pc", sp="sp", fp="x29",
)

ARCHES: dict[int, ArchLayout] = {EM_X86_64: X86_64, EM_AARCH64: AARCH64}

# e_machine values people are likely to meet, for error messages.
MACHINE_NAMES: dict[int, str] = {
    3: "i386", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "s390", 40: "ARM (32-bit)",
    62: "x86-64", 183: "aarch64", 243: "RISC-V", 258: "LoongArch",
}
