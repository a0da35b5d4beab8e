"""crashkit.elf.compressed on real cores compressed by the real command-line
tools (zstd, xz, lz4, gzip), and the front of a big real core made by gdb's
gcore: notes-only reading of a compressed core must not cost its size."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crashkit.elf import compressed as C
from crashkit.host import coresources as S
from crashkit.writers import store as W
from tests.conftest import unavailable
from tests.unit.cores import real_core_path

pytestmark = pytest.mark.integration

TOOLS = {
    "zstd": (["zstd", "-q", "-T0", "-c"], "zst"),
    "xz": (["xz", "-T0", "--block-size=1MiB", "-c"], "xz"),  # several blocks
    "lz4": (["lz4", "-q", "-c"], "lz4"),
    "gzip": (["gzip", "-c"], "gz"),
}


def tool_copy(kind: str, src: str, dest_dir: Path, name: str) -> Path:
    argv, ext = TOOLS[kind]
    if shutil.which(argv[0]) is None:
        unavailable(f"{argv[0]} is not installed")
    out = dest_dir / f"{name}.{ext}"
    with open(src, "rb") as fin, out.open("wb") as fout:
        subprocess.run(argv, stdin=fin, stdout=fout, check=True)
    return out


@pytest.fixture(scope="module")
def core_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A crash core from scripts/make-sample-cores, else one gcore makes."""
    path = real_core_path()
    if path is None:
        return str(gcore_big(tmp_path_factory.mktemp("gcore"), 8))
    return path


@pytest.mark.parametrize("kind", sorted(TOOLS))
def test_tool_compressed_real_core(tmp_path: Path, core_path: str, kind: str) -> None:
    data = Path(core_path).read_bytes()
    boot = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    # Named as systemd-coredump names its files (only .zst/.xz/.lz4 exist
    # there; the gzip copy is named the same way and must be told by magic).
    comp = tool_copy(kind, core_path, tmp_path, f"core.nginx.33.{boot}.4242.1700000000000000")
    front = C.open_front(str(comp), 1 << 16)
    assert front.kind == kind and front.data == data[: 1 << 16]
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        got = C.decompress_to(str(comp), fd)
    finally:
        os.close(fd)
    assert (got.size, got.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    entry = {e.name: e for e in S.scan_dir(str(tmp_path))}[comp.name]
    assert (entry.status, entry.format) == ("candidate", kind)
    if kind != "gzip":
        assert entry.naming == "systemd" and entry.fields is not None
        assert entry.fields.compression == kind and entry.fields.pid == 4242
    with W.open_store(str(tmp_path / "store")) as st:
        dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        res = W.ingest(st, W.Source(dir_fd, comp.name, str(comp), "systemd", kind),
                       W.Facts(signature="s"))
        os.close(dir_fd)
    assert res.sha256 == got.sha256 and res.size == len(data)


def gcore_big(tmp_path: Path, mib: int) -> Path:
    """A real core of a process holding ``mib`` MiB, half random and half
    zeros, written by gdb's gcore."""
    if shutil.which("gcore") is None:
        unavailable("gdb's gcore is not installed")
    prog = ("import os,sys,time\n"
            f"keep=[os.urandom(1<<19)+bytes(1<<19) for _ in range({mib})]\n"
            "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", prog], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        out = tmp_path / "big"
        proc = subprocess.run(["gcore", "-o", str(out), str(child.pid)], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            unavailable(f"gcore failed: {proc.stderr[-500:]}")
        return Path(f"{out}.{child.pid}")
    finally:
        child.kill()
        child.wait()


def test_front_of_a_big_compressed_core_is_fast(tmp_path: Path) -> None:
    core = gcore_big(tmp_path, 256)
    size = core.stat().st_size
    assert size > 256 << 20
    comp = tool_copy("zstd", str(core), tmp_path, "big")
    with core.open("rb") as f:
        head = f.read(1 << 20)
    t0 = time.perf_counter()
    front = C.open_front(str(comp), 1 << 20)
    took = time.perf_counter() - t0
    assert front.data == head
    is_core, extent = S.elf_extent(front.data, lambda o, n: front.data[o:o + n])
    assert is_core and extent is not None and extent <= size  # gdb appends section headers
    assert took < 0.25, f"front of a {size >> 20} MiB zstd core took {took:.3f} s"
    print(f"front 1 MiB of a {size >> 20} MiB core ({comp.stat().st_size >> 20} MiB zstd): "
          f"{took * 1000:.1f} ms")
