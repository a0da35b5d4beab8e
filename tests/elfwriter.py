"""Write small synthetic ELF64 cores for edge cases a real crash cannot produce.

Layouts follow the kernel's (fs/binfmt_elf.c); values are whatever a test
asks for. Real crash cores come from scripts/make-sample-cores.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

EM_X86_64, EM_AARCH64 = 62, 183
X86_REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
            "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
            "gs_base", "ds", "es", "fs", "gs")
A64_REGS = (*tuple(f"x{i}" for i in range(31)), "sp", "pc", "pstate")


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    name0 = name + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name0), len(desc), ntype) + pad(name0) + pad(desc)


@dataclass
class SynthThread:
    tid: int
    regs: dict[str, int]
    cursig: int = 11


@dataclass
class SynthCore:
    machine: int = EM_X86_64
    e_type: int = 4
    elf_class: int = 2
    threads: list[SynthThread] = field(default_factory=list)
    pid: int = 4242
    ppid: int = 1
    uid: int = 33
    gid: int = 33
    fname: bytes = b"synth"
    psargs: bytes = b"synth --flag"
    siginfo: tuple[int, int, int, bytes] | None = (11, 0, 1, struct.pack("<Q", 0x18))
    auxv: dict[int, int] = field(default_factory=dict)
    files: list[tuple[int, int, int, str]] = field(default_factory=list)  # start,end,pgoff,path
    loads: list[tuple[int, bytes]] = field(default_factory=list)  # vaddr, data
    extra_notes: list[bytes] = field(default_factory=list)
    empty_loads: int = 0  # PT_LOADs with no data (unreadable memory), e.g. 70,000 for PN_XNUM

    def regnames(self) -> tuple[str, ...]:
        return A64_REGS if self.machine == EM_AARCH64 else X86_REGS

    def notes(self) -> bytes:
        out = b""
        for i, t in enumerate(self.threads):
            head = struct.pack("<iiihxxQQiiii", t.cursig, 0, 0, t.cursig, 0, 0, t.tid,
                               self.ppid, self.pid, self.pid) + b"\0" * 64
            regs = struct.pack(f"<{len(self.regnames())}Q",
                               *(t.regs.get(r, 0) for r in self.regnames()))
            out += note(b"CORE", 1, head + regs + struct.pack("<i4x", 1))
            if i == 0:
                ps = struct.pack("<BBBB4xQIIiiii16s80s", 82, ord("R"), 0, 0, 0, self.uid,
                                 self.gid, self.pid, self.ppid, self.pid, self.pid,
                                 self.fname, self.psargs)
                out += note(b"CORE", 3, ps)
                if self.siginfo is not None:
                    signo, errno, code, union = self.siginfo
                    si = struct.pack("<iii4x", signo, errno, code) + union
                    out += note(b"CORE", 0x53494749, si.ljust(128, b"\0"))
                av = b"".join(struct.pack("<QQ", k, v) for k, v in self.auxv.items())
                out += note(b"CORE", 6, av + struct.pack("<QQ", 0, 0))
                if self.files:
                    nf = struct.pack("<QQ", len(self.files), 4096)
                    nf += b"".join(struct.pack("<QQQ", s, e, o) for s, e, o, _ in self.files)
                    nf += b"".join(p.encode() + b"\0" for *_, p in self.files)
                    out += note(b"CORE", 0x46494C45, nf)
        return out + b"".join(self.extra_notes)

    def build(self) -> bytes:
        notes = self.notes()
        phnum = 1 + len(self.loads) + self.empty_loads
        data_off = 64 + 56 * phnum
        phdrs = struct.pack("<IIQQQQQQ", 4, 0, data_off, 0, 0, len(notes), 0, 4)
        off = data_off + len(notes)
        off = (off + 4095) & ~4095
        blobs = []
        for vaddr, data in self.loads:
            phdrs += struct.pack("<IIQQQQQQ", 1, 5, off, vaddr, 0, len(data), len(data), 4096)
            blobs.append((off, data))
            off = (off + len(data) + 4095) & ~4095
        phdrs += b"".join(struct.pack("<IIQQQQQQ", 1, 4, off, 0x10000000 + i * 0x1000, 0, 0,
                                      0x1000, 4096) for i in range(self.empty_loads))
        # More than 65534 segments: e_phnum is PN_XNUM and the count is in
        # section header 0's sh_info, at the end of the file (fs/binfmt_elf.c).
        xnum = phnum >= 0xFFFF
        image_end = off
        ident = b"\x7fELF" + bytes([self.elf_class, 1, 1, 0]) + b"\0" * 8
        ehdr = ident + struct.pack("<HHIQQQIHHHHHH", self.e_type, self.machine, 1, 0, 64,
                                   image_end if xnum else 0, 0, 64, 56,
                                   0xFFFF if xnum else phnum, 64 if xnum else 0,
                                   1 if xnum else 0, 0)
        image = bytearray(ehdr + phdrs + notes)
        for o, d in blobs:
            image += b"\0" * (o - len(image))
            image += d
        if xnum:
            image += b"\0" * (image_end - len(image))
            image += struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, phnum, 0, 0)
        return bytes(image)


def tiny_elf_image(build_id: bytes) -> bytes:
    """The first page of a mapped ELF: header, one PT_NOTE, a build-id note."""
    n = note(b"GNU", 3, build_id)
    ehdr = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack(
        "<HHIQQQIHHHHHH", 3, EM_X86_64, 1, 0, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 4, 4, 120, 120, 120, len(n), len(n), 4)
    return (ehdr + ph + n).ljust(4096, b"\0")


def with_huge_section(src: str, dst: str, name: bytes, size: int) -> None:
    """Copy the ELF64 file ``src`` to ``dst`` with its section ``name`` moved
    past the end and claiming ``size`` bytes, the file extended to hold them
    as a hole (sparse: it costs no disk)."""
    import os

    data = bytearray(open(src, "rb").read())  # noqa: SIM115
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    strings = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)[0]
    where = (len(data) + 0xFFFFF) & ~0xFFFFF
    for i in range(shnum):
        header = shoff + i * shentsize
        start = strings + struct.unpack_from("<I", data, header)[0]
        if data[start:data.index(b"\0", start)] == name:
            struct.pack_into("<QQ", data, header + 0x18, where, size)
            break
    else:
        raise ValueError(f"{src} has no section {name!r}")
    with open(dst, "wb") as f:
        f.write(data)
    os.truncate(dst, where + size)
    os.chmod(dst, 0o755)
