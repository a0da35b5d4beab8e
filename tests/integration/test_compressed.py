"""crashkit.elf.compressed on real cores compressed by the real command-line
tools (zstd, xz, lz4, gzip), and the front of a big real core made by gdb's
gcore: notes-only reading of a compressed core must not cost its size."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from crashkit.elf import compressed as C
from crashkit.host import coresources as S
from crashkit.writers import store as W
from tests.conftest import ROOT, check_schema, crash_for_core, fixture, run_cli, unavailable
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


# ------------------------------------------------ analyze --no-gdb on the front

def _no_gdb(core: str) -> dict[str, object]:
    """analyze --no-gdb --json of ``core``, less what names the file itself."""
    proc = run_cli("analyze", "--no-gdb", "--json", "--no-host", core)
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    check_schema(data)
    data["core"].pop("path")
    if data.get("crash_time"):
        data["crash_time"].pop("age_seconds", None)
    return data


# zstd -o FILE records the content size in the frame header; zstd reading a
# pipe (as systemd-coredump's streaming writer) does not; xz in 1 MiB blocks.
FRONT_TOOLS = {
    "zstd-with-size": ["zstd", "-q", "-f", "{src}", "-o", "{out}"],
    "zstd-streamed": ["sh", "-c", 'zstd -q -c < "$0" > "$1"', "{src}", "{out}"],
    "xz": ["sh", "-c", 'xz -T0 --block-size=1MiB -c < "$0" > "$1"', "{src}", "{out}"],
    "lz4": ["lz4", "-q", "-f", "{src}", "{out}"],
    "gzip": ["sh", "-c", 'gzip -c < "$0" > "$1"', "{src}", "{out}"],
}


def front_copy(kind: str, src: Path, out: Path) -> Path:
    argv = [a.format(src=src, out=out) for a in FRONT_TOOLS[kind]]
    tool = argv[0] if argv[0] != "sh" else argv[2].split()[0]
    if shutil.which(tool) is None:
        unavailable(f"{tool} is not installed")
    subprocess.run(argv, check=True)
    st = src.stat()
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))  # the crash time comes from it
    return out


@pytest.mark.parametrize("name", ["nginx-null", "mt-64", "truncated"])
@pytest.mark.parametrize("kind", sorted(FRONT_TOOLS))
def test_no_gdb_facts_of_a_compressed_core_are_the_plain_cores(
        tmp_path: Path, manifest: dict[str, Any], name: str, kind: str) -> None:
    """Every fact analyze --no-gdb gives (notes, build-ids read from the
    core's memory, the stack scan, truncation, the verdict and signature) is
    the same from the compressed core as from the plain one, for cores
    whose front holds all of them."""
    plain = Path(fixture(manifest, name)["core"])
    comp = front_copy(kind, plain, tmp_path / f"core.{kind}")
    assert comp.read_bytes()[:4] != b"\x7fELF"
    got, want = _no_gdb(str(comp)), _no_gdb(str(plain))
    assert got == want
    assert want["core"]["truncated"] is (name == "truncated")  # type: ignore[index]


def _bigmem_core(tmp_path: Path, mb: int) -> Path:
    exe = tmp_path / "bigmem"
    if shutil.which("gcc") is None:
        unavailable("gcc is not installed")
    subprocess.run(["gcc", "-g", "-O2", "-fno-omit-frame-pointer", "-o", str(exe),
                    str(ROOT / "sample_cores" / "bigmem" / "bigmem.c")], check=True)
    work = tmp_path / "run"
    work.mkdir()
    return crash_for_core([str(exe), "--mb", str(mb), "--side", str(work / "facts.json")], work)


def test_no_gdb_reads_only_the_front_of_a_big_compressed_core(tmp_path: Path) -> None:
    """A core larger than the decoded front (32 MiB): the notes' facts are
    the plain core's; what lies past the front (the libraries' first pages,
    the stack) is reported as not read, never guessed; the size is the
    stream's own record of it when it has one, and said to be unchecked when
    it has none."""
    core = _bigmem_core(tmp_path, 64)
    assert core.stat().st_size > C.FRONT_BUDGET + (32 << 20)
    want = _no_gdb(str(core))
    for kind in ("zstd-with-size", "zstd-streamed", "xz"):
        got = _no_gdb(str(front_copy(kind, core, tmp_path / f"big.{kind}")))
        for key in ("signal", "crash", "mappings", "auxv", "gdb_used"):
            assert got[key] == want[key], key
        threads = [{k: v for k, v in t.items() if k != "frames"} for t in got["threads"]]
        assert threads == [{k: v for k, v in t.items() if k != "frames"}
                           for t in want["threads"]]
        assert [t["frames"][0] for t in got["threads"]] == \
            [t["frames"][0] for t in want["threads"]]
        gc, wc = got["core"], want["core"]
        # execfn is a string at the top of the stack: past the front.
        assert gc["execfn"] is None and wc["execfn"] is not None
        same = {"size", "truncated"} if kind == "zstd-streamed" else {"execfn"}
        assert {k: v for k, v in gc.items() if k not in same | {"execfn"}} == \
            {k: v for k, v in wc.items() if k not in same | {"execfn"}}
        # The executable's first page comes before the heap: in the front.
        exe = next(m for m in got["modules"] if m["path"] == want["core"]["exe"])
        assert exe["build_id"] == next(m for m in want["modules"]
                                       if m["path"] == exe["path"])["build_id"]
        # The C library's first page lies past the 64 MiB heap: not read.
        libc = next(m for m in got["modules"] if "libc.so" in m["path"])
        assert libc["build_id"] is None and libc["file_build_id"] is not None
        past = [w for w in got["warnings"] if "past the first 32 MiB" in w]
        assert len(past) == 1 and f"{kind.split('-')[0]}-compressed" in past[0]
        unchecked = [w for w in got["warnings"] if "truncated was not checked" in w]
        if kind == "zstd-streamed":
            assert unchecked and gc["size"] == wc["expected_size"]
        else:
            assert not unchecked and gc["size"] == wc["size"] and gc["truncated"] is False


def test_front_image_reads_the_plain_bytes(tmp_path: Path, manifest: dict[str, Any]) -> None:
    """FrontImage: any read within the front is the plain core's bytes, in
    any order; its size is the stream's record of it, or its end once met;
    a read past the budget is refused."""
    import random

    plain = Path(fixture(manifest, "mt-64")["core"])
    data = plain.read_bytes()
    rnd = random.Random(5)
    for kind in ("zstd-with-size", "zstd-streamed", "xz", "lz4", "gzip"):
        comp = front_copy(kind, plain, tmp_path / f"c.{kind}")
        img = C.FrontImage(str(comp), budget=len(data) // 2)
        try:
            assert img.known_size() == (len(data) if kind in ("zstd-with-size", "xz")
                                        else None)
            for _ in range(50):
                off = rnd.randrange(0, len(data) // 2 - 4096)
                assert img.read(off, 4096) == data[off:off + 4096]
            with pytest.raises(C.NotDecompressed):
                img.read(len(data) // 2 + 1, 16)
            img.allow(len(data) + 1)
            assert img.read(len(data) - 10, 100) == data[-10:]
            assert img.known_size() == len(data) and img.problem is None
        finally:
            img.close()
    cut = tmp_path / "cut.zst"
    cut.write_bytes((tmp_path / "c.zstd-streamed").read_bytes()[:-100])
    img = C.FrontImage(str(cut), budget=1 << 40)
    try:
        fd = os.open(cut, os.O_RDONLY)
        assert C.declared_size(fd, "zstd") is None
        os.close(fd)
        img.read(len(data) - 1, 1)
        assert img.problem is not None and "ends early" in img.problem
        assert img.known_size() is not None and img.known_size() < len(data)  # type: ignore[operator]
    finally:
        img.close()


def test_analyze_id_of_a_big_stored_core_takes_its_size_from_the_index(tmp_path: Path) -> None:
    """A big core collected from another filesystem is stored as a zstd
    stream that records no content size; `analyze ID --no-gdb` reads its
    front and takes the size the index verified at collect time: the size
    and truncation are the plain core's, with no 'not checked' warning,
    while the same file analysed by its path says the size is unchecked."""
    core = _bigmem_core(tmp_path, 48)
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        unavailable("/dev/shm is not another filesystem here")
    src = Path(tempfile.mkdtemp(prefix="crashkit-test-", dir=shm))
    try:
        shutil.copyfile(core, src / "core.4242")
        store = tmp_path / "store"
        proc = run_cli("collect", "--only-from", "--from", str(src), "--store", str(store),
                       "--no-gdb", "--json")
        assert proc.returncode in (0, 1), proc.stderr
    finally:
        shutil.rmtree(src)
    (f,) = [f for s in json.loads(proc.stdout)["sources"] for f in s["files"]]
    assert f["outcome"] == "stored" and f["method"] == "copy"
    want = _no_gdb(str(core))
    by_id = _no_gdb_args(str(f["crash_id"]), "--store", str(store))
    stored = next((store / "crashes").iterdir())
    by_path = _no_gdb(str(stored))
    for got in (by_id, by_path):
        assert got["signal"] == want["signal"] and got["mappings"] == want["mappings"]
    assert (by_id["core"]["size"], by_id["core"]["truncated"]) == \
        (want["core"]["size"], False)
    assert not [w for w in by_id["warnings"] if "truncated was not checked" in w]
    assert [w for w in by_path["warnings"] if "truncated was not checked" in w]


def _no_gdb_args(*args: str) -> dict[str, Any]:
    proc = run_cli("analyze", "--no-gdb", "--json", "--no-host", *args)
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    check_schema(data)
    return data
