"""Cores analysed away from the host that made them (issue 17): drgn's test
cores, made on another machine (see tests/data/README.md), with their
binaries given through --sysroot or through --debug-dir alone; a real core
whose NT_FILE note is taken away; an aarch64 core's report; raise() told
from abort()."""

from __future__ import annotations

import json
import lzma
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from crashkit.elf.buildid import file_build_id
from tests.conftest import (
    ROOT,
    analyze_json,
    compile_program,
    crash_for_core,
    fixture,
    run_cli,
    unavailable,
)

pytestmark = pytest.mark.integration

DRGN = ROOT / "build" / "drgn-resources"
ANSWER = ["c", "b", "a", "crashme", "main"]  # drgn's tests/test_stack_trace.py
HOME = "home/osandov"
CASES = {"crashme": ["crashme", "crashme.so"], "crashme_pie": ["crashme_pie", "crashme.so"],
         "crashme_static": ["crashme_static"], "crashme_static_pie": ["crashme_static_pie"]}


@pytest.fixture(scope="module")
def drgn() -> Path:
    if not (DRGN / "crashme.core").is_file():
        unavailable(f"drgn's test cores are not in {DRGN} (scripts/bootstrap fetches them)")
    return DRGN


def sysroot_of(tmp: Path, drgn: Path, binaries: list[str]) -> Path:
    root = tmp / "sysroot"
    (root / HOME).mkdir(parents=True)
    for b in binaries:
        shutil.copy2(drgn / b, root / HOME / b)
    return root


def debug_dir_of(tmp: Path, drgn: Path, binaries: list[str]) -> Path:
    """The binaries in the .build-id/xx/rest layout, under names that say nothing."""
    d = tmp / "debug"
    for b in binaries:
        bid = file_build_id(str(drgn / b)).build_id
        assert bid
        (d / ".build-id" / bid[:2]).mkdir(parents=True, exist_ok=True)
        shutil.copy2(drgn / b, d / ".build-id" / bid[:2] / bid[2:])
    return d


def functions(data: dict[str, Any]) -> list[str | None]:
    return [f["function"] for f in data["threads"][0]["frames"]]


@pytest.mark.parametrize("how", ["sysroot", "debug-dir"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_drgn_cores_give_drgns_answer(tmp_path: Path, drgn: Path, name: str, how: str) -> None:
    binaries = CASES[name]
    opt = (["--sysroot", str(sysroot_of(tmp_path, drgn, binaries))] if how == "sysroot" else
           ["--debug-dir", str(debug_dir_of(tmp_path, drgn, binaries))])
    data = analyze_json(str(drgn / f"{name}.core"), *opt)
    assert functions(data)[:5] == ANSWER
    assert data["signal"]["fault_address"] == 0xABC
    mods = {m["path"]: m for m in data["modules"]}
    for b in binaries:
        m = mods[f"/{HOME}/{b}"]
        assert m["found_by"] == ("sysroot" if how == "sysroot" else "build-id")
        assert m["build_id_from"] == "memory" and m["build_id_match"] is True
    assert mods["[vdso]"]["found_by"] == "core" and mods["[vdso]"]["build_id"]
    # Fedora's libc of the crashed host is not here: listed, and warned with its build-id.
    for path, m in mods.items():
        if m["found_by"] == "missing":
            assert any(path in w and m["build_id"] in w for w in data["warnings"]), path
    text = run_cli("analyze", str(drgn / f"{name}.core"), *opt, check=True).stdout
    assert f"  modules   {len(data['modules'])} ELF files mapped" in text


def test_core_without_headers(tmp_path: Path, drgn: Path) -> None:
    """A PIE core whose ELF headers were not dumped: no build-id in the core.
    Through --sysroot its files are found by path; with --debug-dir alone they
    cannot be identified: every module still listed, none claimed, and the
    verdict on unnamed frames is not 'high'."""
    core = str(drgn / "crashme_pie_no_headers.core")
    root = sysroot_of(tmp_path, drgn, CASES["crashme_pie"])
    assert functions(analyze_json(core, "--sysroot", str(root)))[:5] == ANSWER
    data = analyze_json(core, "--debug-dir", str(debug_dir_of(tmp_path, drgn,
                                                              CASES["crashme_pie"])))
    mods = {m["path"]: m for m in data["modules"]}
    for b in CASES["crashme_pie"]:
        m = mods[f"/{HOME}/{b}"]
        assert (m["found_by"], m["build_id_from"], m["build_id"]) == ("missing", "none", None)
    assert any("does not hold its build-id" in w for w in data["warnings"])
    assert data["verdict"]["module"] == f"/{HOME}/crashme.so"
    assert data["verdict"]["confidence"] == "medium"
    assert "no names" in data["verdict"]["reason"]


def without_nt_file(src: str, dest: Path) -> Path:
    """A copy of a real core whose NT_FILE note has another (unknown) type."""
    d = bytearray(Path(src).read_bytes())
    phoff, = struct.unpack_from("<Q", d, 32)
    phnum, = struct.unpack_from("<H", d, 56)
    patched = 0
    for i in range(phnum):
        ptype, _f, off, _v, _p, filesz, _m, _a = struct.unpack_from("<IIQQQQQQ", d,
                                                                    phoff + 56 * i)
        pos = off
        while ptype == 4 and pos + 12 <= off + filesz:
            namesz, descsz, ntype = struct.unpack_from("<III", d, pos)
            if ntype == 0x46494C45:  # NT_FILE
                struct.pack_into("<I", d, pos + 8, 0x46494C00)
                patched += 1
            pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    assert patched == 1
    dest.write_bytes(d)
    return dest


def test_core_without_nt_file_is_placed_by_auxv_and_link_map(
        tmp_path: Path, manifest: dict[str, Any]) -> None:
    f = fixture(manifest, "nginx-null")
    full = analyze_json(f["core"])
    core = str(without_nt_file(f["core"], tmp_path / "core"))
    for extra in ([], ["--exe", "/usr/sbin/nginx"]):
        data = analyze_json(core, *extra)
        assert functions(data)[:3] == f["expected_functions"][:3]
        assert data["verdict"]["module"] == full["verdict"]["module"]
        assert data["signature"]["hash"] == full["signature"]["hash"]
        placed = {m["path"]: m["placed_by"] for m in data["modules"]}
        assert placed["/usr/sbin/nginx"] == "auxv"
        assert placed[f["module"]] == "link-map"
        assert any("placed by the auxv" in w for w in data["warnings"])
        # The same libraries as NT_FILE named, by the names the link map uses.
        assert len(data["modules"]) == len(full["modules"])


def test_foreign_report_describes_the_crashed_host(tmp_path: Path) -> None:
    """An aarch64 core (from qemu-user, committed) and a drgn core: the report
    names the core's architecture and kernel, never this host's C library."""
    import os

    aarch = tmp_path / "aarch64.core"
    aarch.write_bytes(lzma.decompress((ROOT / "sample_cores" / "aarch64" /
                                       "qemu-threads.core.xz").read_bytes()))
    here = os.confstr("CS_GNU_LIBC_VERSION") or "glibc"
    for core in (aarch, DRGN / "crashme.core"):
        if not core.exists():
            unavailable(f"{core} is missing (scripts/bootstrap fetches drgn's cores)")
        out = tmp_path / f"out-{core.stem}"
        out.mkdir()
        proc = run_cli("report", str(core), "--out", str(out), "--format", "md", "--json",
                       check=True)
        bundle = json.loads(proc.stdout)["bundle"]
        shutil.unpack_archive(bundle, out / "x")
        (top,) = (out / "x").iterdir()
        system = (top / "system.txt").read_text()
        report = (top / "report.md").read_text()
        arch = "aarch64" if core == aarch else "x86-64"
        assert f"architecture: {arch}\n" in system
        assert f"| architecture | {arch} |" in report
        assert here not in system and here not in report
        assert "analysed on: another host" in system


@pytest.mark.parametrize(("call", "kind"), [("raise(SIGABRT)", "self-signal"),
                                            ("abort()", "abort")])
def test_raise_is_not_abort(tmp_path: Path, call: str, kind: str) -> None:
    exe = compile_program(tmp_path, "dies", "#include <signal.h>\n#include <stdlib.h>\n"
                          f"int main(void) {{ {call}; return 0; }}\n", opt="-O0")
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)), "--exe", str(exe))
    assert data["verdict"]["kind"] == kind
    assert ("raise(SIGABRT), not abort()" in data["crash"]["cause"]) == (kind == "self-signal")


def test_debuginfod_serves_the_missing_files(tmp_path: Path, drgn: Path) -> None:
    """--debuginfod: the files the core names, missing here, come by build-id
    from a real debuginfod server (elfutils', serving a directory of drgn's
    binaries on 127.0.0.1), into crashkit's cache, for crashkit and gdb alike."""
    import os
    import subprocess
    import time
    import urllib.request

    from crashkit.gdb.spawn import debuginfod_cache
    from tests.live_nginx import free_port

    if shutil.which("debuginfod") is None:
        unavailable("elfutils' debuginfod is not installed (apt-get install debuginfod)")
    served = tmp_path / "served"
    served.mkdir()
    ids = []
    for b in CASES["crashme"]:
        shutil.copy2(drgn / b, served / b)
        ids.append(file_build_id(str(drgn / b)).build_id)
    cache, problem = debuginfod_cache()
    assert cache is not None, problem
    for bid in ids:  # nothing from an earlier run: the server must answer
        shutil.rmtree(os.path.join(cache, str(bid)), ignore_errors=True)
    port = free_port()
    log = (tmp_path / "debuginfod.log").open("w")
    server = subprocess.Popen(["debuginfod", "-F", str(served), "-p", str(port), "-t", "0",
                               "-d", str(tmp_path / "db.sqlite")], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # until it has scanned the directory and serves the build-id
            try:
                with urllib.request.urlopen(f"{url}/buildid/{ids[0]}/executable", timeout=5):
                    break
            except OSError:  # refused, reset, or a timeout (socket.timeout is one)
                if time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "debuginfod.log").read_text()) from None
                time.sleep(0.3)
        shutil.rmtree(os.path.join(cache, str(ids[0])), ignore_errors=True)
        env = {"DEBUGINFOD_URLS": url}
        core = str(drgn / "crashme.core")
        off = json.loads(run_cli("analyze", core, "--json", env=env, check=True).stdout)
        assert {m["found_by"] for m in off["modules"] if m["path"].startswith(f"/{HOME}")} \
            == {"missing"}
        for _run in (1, 2):
            data = json.loads(run_cli("analyze", core, "--json", "--debuginfod", env=env,
                                      check=True).stdout)
            assert functions(data)[:5] == ANSWER
            mods = {m["path"]: m for m in data["modules"]}
            for b in CASES["crashme"]:
                assert mods[f"/{HOME}/{b}"]["found_by"] == "debuginfod"
                assert mods[f"/{HOME}/{b}"]["file"].startswith(cache)
    finally:
        server.terminate()
        server.wait(timeout=30)
        for bid in ids:
            shutil.rmtree(os.path.join(cache, str(bid)), ignore_errors=True)
    requests = (tmp_path / "debuginfod.log").read_text().count("/executable 200")
    assert requests == 1 + len(ids), "the second run must come from the cache"
