"""A real aarch64 core, committed compressed (7 KiB): made by qemu-user from
sample_cores/aarch64/threads.c (see sample_cores/README.md), useful without
its binary for everything the notes hold."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, analyze_json, unavailable
from tests.readelf import readelf_notes

SOURCE = ROOT / "sample_cores" / "aarch64" / "qemu-threads.core.xz"


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("aarch64") / "core"
    path.write_bytes(lzma.decompress(SOURCE.read_bytes()))
    return str(path)


def test_notes(core: str) -> None:
    data = analyze_json(core, "--no-gdb")
    c, threads = data["core"], data["threads"]
    assert (c["arch"], c["pid"], c["ppid"], c["uid"], c["program"], c["cmdline"]) == (
        "aarch64", 22941, 22940, 0, "a", "./a")
    assert [t["tid"] for t in threads] == [22941, 22943]
    regs = threads[0]["registers"]
    assert (regs["pc"], regs["sp"], regs["fp"]) == (0x400734, 0x5500800690, 0x5500800690)
    assert (regs["x29"], regs["x30"], regs["x2"], regs["pstate"]) == (
        0x5500800690, 0x40056C, 4587520, 0x60000000)
    # qemu writes no NT_SIGINFO: the signal comes from pr_cursig, its code is unknown.
    assert (data["signal"]["name"], data["signal"]["code"]) == ("SIGSEGV", None)
    assert data["auxv"]["AT_ENTRY"] == 0x4005C0 and data["auxv"]["AT_PHDR"] == 0x400040


@pytest.mark.integration
def test_against_eu_readelf(core: str) -> None:
    if shutil.which("eu-readelf") is None:
        unavailable("eu-readelf (elfutils) is not installed")
    ref = readelf_notes(core)
    data = analyze_json(core, "--no-gdb")
    assert [t["tid"] for t in data["threads"]] == ref.tids
    assert data["core"]["uid"] == int(ref.psinfo["uid"])


@pytest.mark.integration
def test_through_gdb_multiarch(core: str) -> None:
    """The host's gdb reads x86-64 only (and would decode aarch64 as x86);
    crashkit switches to gdb-multiarch, or says to install it."""
    if shutil.which("gdb-multiarch") is None:
        unavailable("gdb-multiarch is not installed (apt-get install gdb-multiarch)")
    data = analyze_json(core)
    assert data["gdb_used"] is True, data["gdb_error"]
    assert data["threads"][0]["frames"][0]["pc"] == 0x400734
    assert all("%e" not in i["text"] for i in data["context"]["instructions"])  # not x86


def test_without_a_gdb_for_the_arch(core: str, tmp_path: Path) -> None:
    """No gdb-multiarch on the tool path: one clear sentence, and the notes."""
    from tests.conftest import run_cli

    bindir = tmp_path / "bin"
    bindir.mkdir()
    gdb = shutil.which("gdb")
    if gdb is None:
        unavailable("gdb is not installed")
    (bindir / "gdb").symlink_to(gdb)
    proc = run_cli("analyze", core, env={"CRASHKIT_TOOL_PATH": str(bindir)})
    assert proc.returncode == 0
    assert "the core is aarch64, and gdb here reads x86-64 only; install gdb-multiarch" \
        in proc.stderr
    assert proc.stdout.splitlines()[1].startswith("a (pid 22941) died of SIGSEGV")
