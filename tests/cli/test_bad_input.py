"""Bad input through the real command line: one line naming the file, exit 2,
no traceback, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.elfwriter import SynthCore, SynthThread


def assert_one_line_error(args: list[str], *expected: str) -> str:
    proc = run_cli(*args)
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_missing_file(tmp_path: Path) -> None:
    p = str(tmp_path / "nope")
    assert assert_one_line_error(["analyze", p]) == f"crashkit: error: {p}: no such file"


def test_directory(tmp_path: Path) -> None:
    assert_one_line_error(["analyze", str(tmp_path)], str(tmp_path), "is a directory")


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "core.1"
    p.write_bytes(b"")
    assert_one_line_error(["analyze", str(p)], str(p), "empty file")


def test_not_elf(tmp_path: Path) -> None:
    p = tmp_path / "core.2"
    p.write_text("worker process 12 exited on signal 11\n")
    assert_one_line_error(["analyze", str(p)], str(p), "not an ELF file")


def test_broken_compressed_core(tmp_path: Path) -> None:
    """A compressed core is decompressed for the analysis; one whose stream
    is cut or garbage is one line naming the file, and no temporary file
    is left behind."""
    p = tmp_path / "core.nginx.1234.zst"
    p.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 100)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.run([sys.executable, "-m", "crashkit", "analyze", str(p)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TMPDIR": str(tmp)})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"crashkit: error: {p}: zstd stream ends early "
                                        "(truncated file)"]
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "the zstd stream holds 0 bytes: not a core"),
    (b"\x7fELF\x02\x01\x01" + b"\0" * 33, "cut inside the ELF header (40 bytes of 64; "
     "the zstd stream ends there)"),
    (b"not a core at all, but compressed", "not an ELF file (it starts with bytes 6e 6f 74 20)"),
])
def test_compressed_non_core_without_gdb(tmp_path: Path, content: bytes, expected: str) -> None:
    """--no-gdb reads a compressed core's front in memory: what is not a
    core there is one line naming the file, as a plain file would be."""
    import zstandard

    p = tmp_path / "core.zst"
    p.write_bytes(zstandard.ZstdCompressor().compress(content))
    line = assert_one_line_error(["analyze", "--no-gdb", str(p)], str(p))
    assert line == f"crashkit: error: {p}: {expected}"


def test_cut_compressed_stream_without_gdb(tmp_path: Path) -> None:
    import zstandard

    from tests.unit.cores import core_bytes

    data = zstandard.ZstdCompressor().compress(core_bytes())
    p = tmp_path / "core.zst"
    p.write_bytes(data[:12])  # the frame header and a piece of its first block
    assert_one_line_error(["analyze", "--no-gdb", str(p)], str(p), "not a core")


def test_executable_is_not_a_core() -> None:
    exe = shutil.which("true") or "/bin/true"
    line = assert_one_line_error(["analyze", exe], exe, "not a core")
    assert "ET_DYN" in line or "ET_EXEC" in line


def test_other_architecture(tmp_path: Path) -> None:
    c = SynthCore(machine=40, elf_class=2, threads=[SynthThread(1, {})])  # 32-bit ARM e_machine
    p = tmp_path / "core.arm"
    p.write_bytes(c.build())
    assert_one_line_error(["analyze", str(p)], str(p), "unsupported architecture (ARM (32-bit))")


def test_cut_inside_program_headers(tmp_path: Path) -> None:
    c = SynthCore(threads=[SynthThread(1, {"rip": 0x10})], loads=[(0x1000, b"x" * 100)])
    p = tmp_path / "core.cut"
    p.write_bytes(c.build()[:100])
    assert_one_line_error(["analyze", str(p)], str(p), "cut inside its program headers")


def test_bad_exe_option(tmp_path: Path) -> None:
    c = SynthCore(threads=[SynthThread(1, {"rip": 0x10})])
    p = tmp_path / "core"
    p.write_bytes(c.build())
    missing = str(tmp_path / "no-such-nginx")
    assert_one_line_error(["analyze", str(p), "--exe", missing], missing, "--exe: no such file")


@pytest.mark.parametrize(("args", "line"), [
    (["analyze", "--bogus"],
     "crashkit: error: No such option '--bogus' (see crashkit analyze --help)"),
    (["analyze"], "crashkit: error: Missing argument 'CORE' (see crashkit analyze --help)"),
    (["nope"], "crashkit: error: No such command 'nope' (see crashkit --help)"),
    (["analyze", "x", "--max-frames", "0"],
     "crashkit: error: Invalid value for '--max-frames': 0 is not in the range x>=1 "
     "(see crashkit analyze --help)"),
])
def test_usage_errors_are_one_line(args: list[str], line: str) -> None:
    proc = run_cli(*args)
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, line + "\n", "")


@pytest.mark.parametrize("descsz", [0xFFFFFFFF, 1 << 20])
def test_absurd_note_sizes_still_report(tmp_path: Path, descsz: int) -> None:
    c = SynthCore(threads=[SynthThread(9, {"rip": 0x10, "rsp": 0x20})])
    c.extra_notes = [struct.pack("<III", 5, descsz, 0x53494749) + b"CORE\0\0\0\0"]
    p = tmp_path / "core"
    p.write_bytes(c.build())
    proc = run_cli("analyze", str(p), "--no-gdb", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    # Everything before the bad note is there; the bad note is reported.
    assert (data["signal"]["name"], data["signal"]["fault_address"]) == ("SIGSEGV", 0x18)
    assert [t["tid"] for t in data["threads"]] == [9]
    assert data["core"]["pid"] == 4242 and data["core"]["cmdline"] == "synth --flag"
    assert any("claims 5+" + str(descsz) in w and "notes after it are lost" in w
               for w in data["warnings"])


def test_no_verb_is_a_usage_error() -> None:
    """`crashkit` alone prints its help on stderr and exits 2, like any usage
    error; `crashkit --help` is the way to ask for help (exit 0)."""
    proc = run_cli()
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith("Usage: crashkit [OPTIONS] COMMAND [ARGS]...")
    asked = run_cli("--help")
    assert asked.returncode == 0 and asked.stdout.startswith("Usage: crashkit")
