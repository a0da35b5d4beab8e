"""Core reader on synthetic cores: layouts real crashes here cannot give
(aarch64, damaged notes), checked field by field."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from crashkit.commands.analyze import Options
from crashkit.commands.analyze import analyze as analyze_core
from crashkit.elf.core import CoreFile
from crashkit.errors import CoreFormatError, CrashkitError, UnsupportedCoreError
from crashkit.model.analyze import Analysis
from tests.elfwriter import EM_AARCH64, SynthCore, SynthThread, note, tiny_elf_image

LIB = "/opt/synthetic/libfake.so"


def analyze(path: str) -> Analysis:
    """The analysis without this host's package database or processes: the
    unit tier looks nothing up (tests/integration does, on real cores)."""
    return analyze_core(path, Options(host_facts=False, isolate=False))
BUILD_ID = bytes.fromhex("0123456789abcdef0123456789abcdef01234567")


def aarch64_core() -> SynthCore:
    regs = {f"x{i}": 0x1000 + i for i in range(31)}
    regs.update(sp=0xFFFFF0001000, pc=0x400123, pstate=0x60000000, x29=0xFFFFF0001100)
    return SynthCore(
        machine=EM_AARCH64,
        threads=[SynthThread(101, regs), SynthThread(102, {"pc": 0x400200, "sp": 0x2000})],
        pid=101, ppid=100, uid=1000, gid=1001, fname=b"worker", psargs=b"worker -c /etc/w",
        siginfo=(7, 0, 2, struct.pack("<Q", 0xDEAD000)),
        auxv={6: 4096, 9: 0x400100},
        files=[(0x400000, 0x401000, 0, "/usr/bin/worker"), (0x7F0000, 0x7F2000, 0, LIB)],
        loads=[(0x7F0000, tiny_elf_image(BUILD_ID))],
    )


def write(tmp_path: Path, data: bytes, name: str = "core") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_aarch64_notes(tmp_path: Path) -> None:
    path = write(tmp_path, aarch64_core().build())
    with CoreFile(path) as core:
        facts = core.facts()
    assert facts.arch == "aarch64"
    assert [t.tid for t in facts.threads] == [101, 102]
    assert [t.crashed for t in facts.threads] == [True, False]
    t = facts.threads[0]
    assert (t.pc, t.sp, t.fp) == (0x400123, 0xFFFFF0001000, 0xFFFFF0001100)
    assert t.registers["x0"] == 0x1000 and t.registers["x30"] == 0x1000 + 30
    assert t.registers["pstate"] == 0x60000000
    assert facts.process is not None
    assert (facts.process.pid, facts.process.ppid, facts.process.uid, facts.process.gid) == (
        101, 100, 1000, 1001)
    assert facts.process.fname == "worker" and facts.process.args == "worker -c /etc/w"
    s = facts.signal
    assert s is not None
    assert (s.number, s.name, s.code, s.code_name, s.fault_address) == (
        7, "SIGBUS", 2, "BUS_ADRERR", 0xDEAD000)
    assert s.sender_pid is None
    assert facts.exe == "/usr/bin/worker"  # the mapping AT_ENTRY points into
    assert facts.auxv["AT_PAGESZ"] == 4096
    assert not facts.truncated and facts.expected_size == facts.size


def test_build_id_from_core_memory(tmp_path: Path) -> None:
    a = analyze(write(tmp_path, aarch64_core().build()))
    mods = {m.path: m for m in a.core.modules}
    assert mods[LIB].build_id == BUILD_ID.hex()
    assert mods[LIB].file_status == "missing" and mods[LIB].build_id_match is None
    # /usr/bin/worker's first page is not in the core and the file is not on disk:
    # nothing shows it is an ELF file, so it is not listed as a module.
    assert "/usr/bin/worker" not in mods


def test_sender_of_kill(tmp_path: Path) -> None:
    c = SynthCore(threads=[SynthThread(7, {"rip": 0x1000, "rsp": 0x2000, "rbp": 0x3000})],
                  siginfo=(11, 0, 0, struct.pack("<iI", 4321, 1000)))
    with CoreFile(write(tmp_path, c.build())) as core:
        s = core.facts().signal
    assert s is not None
    assert (s.code_name, s.sender_pid, s.sender_uid, s.fault_address) == (
        "SI_USER", 4321, 1000, None)


def test_no_siginfo_falls_back_to_cursig(tmp_path: Path) -> None:
    c = SynthCore(threads=[SynthThread(7, {"rip": 1}, cursig=6)], siginfo=None)
    with CoreFile(write(tmp_path, c.build())) as core:
        s = core.facts().signal
    assert s is not None and (s.number, s.name, s.code) == (6, "SIGABRT", None)


def test_absurd_note_size_keeps_earlier_notes(tmp_path: Path) -> None:
    c = aarch64_core()
    bogus = struct.pack("<III", 5, 0xFFFFFFF0, 1) + b"CORE\0\0\0\0"
    c.extra_notes = [bogus]
    with CoreFile(write(tmp_path, c.build())) as core:
        facts = core.facts()
    assert len(facts.threads) == 2 and facts.signal is not None
    assert any("claims" in p and "lost" in p for p in facts.problems)


def test_absurd_nt_file_count(tmp_path: Path) -> None:
    c = aarch64_core()
    c.files = []
    c.extra_notes = [note(b"CORE", 0x46494C45, struct.pack("<QQ", 1 << 60, 4096))]
    with CoreFile(write(tmp_path, c.build())) as core:
        facts = core.facts()
    assert facts.mappings == ()
    assert any("NT_FILE claims 1152921504606846976 mappings" in p for p in facts.problems)


def test_short_prstatus_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    c = aarch64_core()
    c.extra_notes = [note(b"CORE", 1, b"\0" * 40)]
    with CoreFile(write(tmp_path, c.build())) as core:
        facts = core.facts()
    assert [t.tid for t in facts.threads] == [101, 102]  # the short third one is skipped
    assert any("NT_PRSTATUS is 40 bytes" in p for p in facts.problems)


def test_no_readable_note_is_an_error(tmp_path: Path) -> None:
    c = SynthCore(threads=[], siginfo=None)
    c.extra_notes = [note(b"CORE", 1, b"\0" * 40)]
    with pytest.raises(CoreFormatError) as info:
        analyze(write(tmp_path, c.build()))
    assert "no readable notes" in str(info.value) and "NT_PRSTATUS is 40 bytes" in str(info.value)


@pytest.mark.parametrize(("mutate", "error", "text"), [
    (lambda c: setattr(c, "machine", 243), UnsupportedCoreError,
     "unsupported architecture (RISC-V)"),
    (lambda c: setattr(c, "e_type", 2), CoreFormatError, "not a core: it is an executable"),
    (lambda c: setattr(c, "elf_class", 1), UnsupportedCoreError, "32-bit ELF"),
])
def test_rejected_headers(tmp_path: Path, mutate, error, text) -> None:  # type: ignore[no-untyped-def]
    c = aarch64_core()
    mutate(c)
    with pytest.raises(error) as info:
        CoreFile(write(tmp_path, c.build()))
    assert text in str(info.value) and str(tmp_path / "core") in str(info.value)


def test_cut_at_every_byte(tmp_path: Path) -> None:
    """A core cut anywhere gives an error naming the file, or every fact left."""
    full = aarch64_core().build()
    path = tmp_path / "core"
    outcomes = {"error": 0, "partial": 0}
    note_end = 64 + 56 * 2 + len(aarch64_core().notes())
    # Every byte through the headers and notes, then a stride through the data.
    for cut in [*range(note_end + 64), *range(note_end + 64, len(full), 61)]:
        path.write_bytes(full[:cut])
        try:
            a = analyze(str(path))
        except CrashkitError as exc:
            assert str(path) in str(exc)
            outcomes["error"] += 1
            continue
        outcomes["partial"] += 1
        assert a.core.truncated and a.core.expected_size == len(full)
        assert a.core.size == cut
    assert outcomes["error"] and outcomes["partial"]
    # Once the notes are whole, every fact is there.
    path.write_bytes(full[:note_end])
    a = analyze(str(path))
    assert a.core.truncated and len(a.threads) == 2 and a.core.signal is not None
    assert a.core.signal.fault_address == 0xDEAD000 and a.core.exe == "/usr/bin/worker"
    mods = {m.path: m for m in a.core.modules}
    assert LIB not in mods or mods[LIB].build_id is None  # its page was cut off


def test_more_than_65534_segments(tmp_path: Path) -> None:
    """PN_XNUM: the count is in section header 0; a cut that loses it still
    gives the notes (the count is derived from where the notes begin)."""
    c = aarch64_core()
    c.empty_loads = 70_000
    full = c.build()
    with CoreFile(write(tmp_path, full)) as core:
        facts = core.facts()
    assert len(core.segments) == 70_002 and not facts.truncated
    assert [t.tid for t in facts.threads] == [101, 102]
    cut = write(tmp_path, full[:-64], "core.cut")
    a = analyze(cut)
    assert a.core.truncated and a.core.expected_size == len(full)
    assert a.core.signal is not None and a.core.signal.fault_address == 0xDEAD000
    assert [t.tid for t in a.threads] == [101, 102]
