"""crashkit.host.coresources on real files made in tmp_path: core_pattern
names, systemd-coredump and apport names, xattrs, .crash reports, and a
directory scan with links, FIFOs and junk beside real cores."""

from __future__ import annotations

import base64
import gzip
import io
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest
import zstandard

from crashkit.errors import CoreFormatError, InputError
from crashkit.host import coresources as S
from tests.unit.cores import core_bytes


@pytest.fixture(scope="module")
def core() -> bytes:
    return core_bytes()


# -- core_pattern ----------------------------------------------------------

@pytest.mark.parametrize(("pattern", "uses_pid", "name", "expect"), [
    ("core", False, "core", {}),
    ("core", True, "core.4242", {"pid": 4242}),
    ("/var/crash/core.%e.%p.%t", False, "core.nginx.4242.1700000000",
     {"comm": "nginx", "pid": 4242, "time": 1700000000}),
    # core_uses_pid adds .PID only when there is no %p (%P does not count).
    ("/c/core-%P-%s", True, "core-77-11.4242", {"global_pid": 77, "signal": 11, "pid": 4242}),
    ("/c/core.%p", True, "core.4242", {"pid": 4242}),
    ("/c/%E.%u.%g", False, "!usr!sbin!nginx.33.34",
     {"exe": "/usr/sbin/nginx", "uid": 33, "gid": 34}),
    # A comm may hold dots; the anchored match backtracks to the numbers.
    ("/c/core.%e.%p", False, "core.my.app.5", {"comm": "my.app", "pid": 5}),
    ("/c/core-%h-%i-%I-%d-%c-%%", False, "core-web1-9-10-1-0-%",
     {"hostname": "web1", "tid": 9, "dumpable": 1, "rlimit": 0}),
    # Unknown specifiers expand to nothing; a trailing % is dropped.
    ("/c/core%z.%p%", False, "core.12", {"pid": 12}),
    # The same specifier twice must expand to the same text.
    ("/c/%p-%p", False, "3-3", {"pid": 3}),
])
def test_core_pattern_names(pattern: str, uses_pid: bool, name: str,
                            expect: dict[str, object]) -> None:
    cp = S.parse_core_pattern(pattern + "\n", uses_pid)
    assert cp.kind == "file"
    got = cp.match(name)
    assert got is not None, cp.name_regex
    for key, value in expect.items():
        assert getattr(got, key) == value


def test_core_pattern_rejects_other_names() -> None:
    cp = S.parse_core_pattern("/c/core.%e.%p", False)
    assert cp.match("core.nginx.x") is None
    assert cp.match("notes.txt") is None
    assert cp.match("core.toolongcommname123456.5") is None  # %e is at most 15 bytes
    assert S.parse_core_pattern("/c/%p-%p", False).match("3-4") is None


def test_core_pattern_directories() -> None:
    absolute = S.parse_core_pattern("/var/lib/crashkit/cores/core.%p", False)
    assert (absolute.directory, absolute.relative, absolute.nested) == \
        ("/var/lib/crashkit/cores", False, False)
    rel = S.parse_core_pattern("core", True)
    assert (rel.directory, rel.relative) == ("", True)
    sub = S.parse_core_pattern("dumps/core.%e", False)
    assert (sub.directory, sub.relative) == ("dumps", True)
    nested = S.parse_core_pattern("/cores/%u/core.%p", False)
    assert (nested.directory, nested.nested) == ("/cores", True)
    got = nested.match("33/core.9")
    assert got is not None and (got.uid, got.pid) == (33, 9)
    assert S.parse_core_pattern("/core.%p", False).directory == "/"


def test_core_pattern_pipe_and_empty() -> None:
    cp = S.parse_core_pattern("|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h\n",
                              True)
    assert cp.kind == "pipe" and cp.pipe_argv[0] == "/usr/lib/systemd/systemd-coredump"
    assert cp.match("core") is None
    assert S.parse_core_pattern("", False).kind == "none"


# -- systemd-coredump ------------------------------------------------------

BOOT = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def test_systemd_names() -> None:
    got = S.parse_systemd_name(f"core.nginx.33.{BOOT}.4242.1700000000123456.zst")
    assert got is not None
    assert (got.comm, got.uid, got.pid, got.boot_id, got.compression) == \
        ("nginx", 33, 4242, BOOT, "zstd")
    assert (got.time, got.time_usec) == (1700000000, 1700000000123456)
    # xescape(comm, "./ "): dots, spaces, backslashes and control bytes.
    esc = S.parse_systemd_name(rf"core.my\x2eapp\x20\x5c\x01.0.{BOOT}.1.1000000")
    assert esc is not None and esc.comm == "my.app \\\x01" and esc.compression is None
    assert S.parse_systemd_name(f"core.nginx.33.{BOOT}.4242.1700000000.gz") is None
    assert S.parse_systemd_name("core.4242") is None


def test_systemd_xattrs(tmp_path: Path) -> None:
    """Attributes set as systemd's fix_xattr() sets them (text values, one per
    field, XATTR_CREATE) on a file named as make_filename() names it; the
    systemd-coredump binary itself is not run (installing it would change the
    shared machine's kernel.core_pattern)."""
    path = tmp_path / f"core.nginx.33.{BOOT}.4242.1700000000000000"
    path.write_bytes(b"\x7fELF")
    values = {"pid": "4242", "uid": "33", "gid": "33", "signal": "11",
              "timestamp": "1700000000000000", "rlimit": "18446744073709551615",
              "hostname": "web1", "comm": "nginx", "exe": "/usr/sbin/nginx"}
    try:
        for key, value in values.items():
            os.setxattr(path, f"user.coredump.{key}", value.encode(), os.XATTR_CREATE)
        os.setxattr(path, "user.other", b"x")
    except OSError as exc:
        pytest.skip(f"{tmp_path} has no user xattrs: {exc}")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        meta = S.systemd_xattrs(fd)
    finally:
        os.close(fd)
    assert (meta.pid, meta.uid, meta.gid, meta.signal) == (4242, 33, 33, 11)
    assert meta.timestamp_usec == 1700000000000000 and meta.rlimit == 2**64 - 1
    assert (meta.hostname, meta.comm, meta.exe) == ("web1", "nginx", "/usr/sbin/nginx")
    assert dict(meta.raw) == values


def test_systemd_xattrs_absent(tmp_path: Path) -> None:
    path = tmp_path / "plain"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDONLY)
    try:
        meta = S.systemd_xattrs(fd)
    finally:
        os.close(fd)
    assert meta.pid is None and meta.raw == ()


# -- apport ----------------------------------------------------------------

def test_apport_core_names() -> None:
    boot = "6f3c0a52-1d3e-4a8b-9a55-2a8d1e0c7b11"
    got = S.parse_apport_core_name(f"core._usr_sbin_nginx.33.{boot}.4242.98765")
    assert got is not None
    assert (got.exe_mangled, got.uid, got.boot_id, got.pid, got.start_ticks) == \
        ("_usr_sbin_nginx", 33, boot, 4242, 98765)
    unknown = S.parse_apport_core_name(f"core.unknown.0.{boot}.unknown.unknown")
    assert unknown is not None and unknown.pid is None and unknown.start_ticks is None
    assert S.parse_apport_core_name("core._usr_bin_x.33.notaboot.1.2") is None


def write_crash(path: Path, core: bytes | None, *, zstd: bool = False,
                fields: dict[str, str] | None = None) -> None:
    """A .crash file as apport's ProblemReport.write() lays it out: text keys
    sorted with ProblemType first, then each binary key as "Key: base64" and
    continuation lines each holding the base64 of one block on its own: the
    gzip header (FNAME = the key), raw-deflate blocks of 1 MiB input each,
    then the flushed rest with the CRC-32 and size trailer. zstd=True writes
    a zstd stream in the same line-per-block way (newer apport)."""
    text = {"ProblemType": "Crash", "Date": "Thu Nov 14 22:13:20 2023",
            "ExecutablePath": "/usr/sbin/nginx", "Signal": "11",
            "Package": "nginx-core 1.22.1-9", "ProcCmdline": "nginx: worker process",
            "ProcEnviron": "SECRET_TOKEN=hunter2", **(fields or {})}
    with path.open("wb") as f:
        for key in ["ProblemType", *sorted(k for k in text if k != "ProblemType")]:
            value = text[key]
            if "\n" in value:
                f.write(f"{key}:\n ".encode() + value.replace("\n", "\n ").encode() + b"\n")
            else:
                f.write(f"{key}: {value}\n".encode())
        if core is None:
            return
        f.write(b"CoreDump: base64\n ")
        if zstd:
            cobj = zstandard.ZstdCompressor().compressobj()
            blocks = [cobj.compress(core[i:i + 1048576]) for i in range(0, len(core), 1048576)]
            blocks.append(cobj.flush())
            f.write(b"\n ".join(base64.b64encode(b) for b in blocks if b) + b"\n")
        else:
            header = b"\037\213\010" + b"\010\000\000\000\000\002\377" + b"CoreDump\000"
            f.write(base64.b64encode(header) + b"\n ")
            bc = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
            for i in range(0, len(core), 1048576):
                out = bc.compress(core[i:i + 1048576])
                if out:
                    f.write(base64.b64encode(out) + b"\n ")
            tail = bc.flush() + struct.pack("<L", zlib.crc32(core) & 0xFFFFFFFF) \
                + struct.pack("<L", len(core) & 0xFFFFFFFF)
            f.write(base64.b64encode(tail) + b"\n")
        f.write(b"UserGroups: N/A\n")


@pytest.mark.parametrize("zstd", [False, True])
def test_crash_report(tmp_path: Path, core: bytes, zstd: bool) -> None:
    path = tmp_path / "_usr_sbin_nginx.33.crash"
    write_crash(path, core, zstd=zstd, fields={"ProcStatus": "Name:\tnginx\nUid:\t33"})
    with path.open("rb") as f:
        rep = S.read_crash_report(f, path=str(path))
        assert rep.get("ProblemType") == "Crash" and rep.signal == 11
        assert rep.get("ExecutablePath") == "/usr/sbin/nginx"
        assert rep.get("Package") == "nginx-core 1.22.1-9"
        assert rep.get("ProcStatus") == "Name:\tnginx\nUid:\t33"
        assert rep.get("Date") == "Thu Nov 14 22:13:20 2023"
        # Secret-bearing fields are never read in.
        assert rep.get("ProcCmdline") is None and rep.get("ProcEnviron") is None
        assert "hunter2" not in repr(rep)
        assert rep.binary_keys == ("CoreDump",) and rep.coredump_offset is not None
        out = S.open_crash_coredump(f, rep, path=str(path))
        assert out.read(64) == core[:64]
        assert out.read() == core[64:]


def test_crash_report_bad(tmp_path: Path, core: bytes) -> None:
    none = tmp_path / "nocore.crash"
    write_crash(none, None)
    with none.open("rb") as f:
        rep = S.read_crash_report(f)
        assert rep.coredump_offset is None
        with pytest.raises(InputError, match="no CoreDump"):
            list(S.iter_crash_coredump(f, rep))
    cut = tmp_path / "cut.crash"
    write_crash(cut, core)
    data = cut.read_bytes()
    cut.write_bytes(data[: data.index(b"UserGroups") - 200] + b"\n")
    with cut.open("rb") as f:
        rep = S.read_crash_report(f)
        with pytest.raises(CoreFormatError, match=r"ends early|not base64"):
            for _ in S.iter_crash_coredump(f, rep):
                pass
    junk = tmp_path / "junk.crash"
    junk.write_bytes(b"this is not a report\n")
    with junk.open("rb") as f, pytest.raises(InputError, match="no ':'"):
        S.read_crash_report(f)


def test_legacy_zlib_crash(tmp_path: Path, core: bytes) -> None:
    """Old apport wrote a bare zlib stream (no gzip header)."""
    path = tmp_path / "old.crash"
    blob = zlib.compress(core)
    lines = [base64.b64encode(blob[i:i + 4096]) for i in range(0, len(blob), 4096)]
    path.write_bytes(b"ProblemType: Crash\nCoreDump: base64\n " + b"\n ".join(lines) + b"\n")
    with path.open("rb") as f:
        rep = S.read_crash_report(f)
        assert b"".join(S.iter_crash_coredump(f, rep)) == core


# -- scan_dir --------------------------------------------------------------

def by_name(entries: list[S.ScanEntry]) -> dict[str, S.ScanEntry]:
    return {e.name: e for e in entries}


def test_scan_dir(tmp_path: Path, core: bytes) -> None:
    d = tmp_path / "cores"
    d.mkdir()
    (d / "core.100").write_bytes(core)
    (d / "link").symlink_to(d / "core.100")
    (d / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(d / "fifo")
    (d / "notes.txt").write_text("not a core\n")
    (d / "core.0").write_bytes(b"")
    (d / "sub").mkdir()
    (d / "elf.so").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x03\x00" + b"\0" * 64)
    (d / "linked").write_bytes(core[:4096])
    os.link(d / "linked", tmp_path / "outside")
    ww = d / "core.ww"
    ww.write_bytes(core)
    ww.chmod(0o666)
    (d / f"core.nginx.33.{BOOT}.4242.1700000000000000.zst").write_bytes(
        zstandard.ZstdCompressor().compress(core))
    (d / "fake.zst").write_bytes(gzip.compress(core[:1000]))
    write_crash(d / "_usr_sbin_nginx.33.crash", core[:10000])
    (d / "bogus.crash").write_bytes(b"hello\n")
    # A cut core whose writer is long gone: kept, marked truncated.
    cut = d / "core.200"
    cut.write_bytes(core[: len(core) // 2])
    old = time.time() - 3600
    os.utime(cut, (old, old))
    # A cut core written just now: its writer may still be at it.
    (d / "core.300").write_bytes(core[: len(core) // 2])
    for p in d.iterdir():
        if not p.is_symlink() and p.is_file() and p.name not in ("core.ww",):
            p.chmod(0o600)

    fifo_opened = time.monotonic()
    got = by_name(S.scan_dir(str(d), S.ScanOptions(pattern=S.parse_core_pattern("core", True))))
    assert time.monotonic() - fifo_opened < 2  # the FIFO never blocked us

    assert got["core.100"].status == "candidate" and got["core.100"].format == "elf"
    assert got["core.100"].naming == "core_pattern" and got["core.100"].fields is not None
    assert got["core.100"].fields.pid == 100 and got["core.100"].truncated is False
    assert (got["link"].status, got["link"].reason) == ("rejected", "symlink")
    assert got["dangling"].reason == "symlink"
    assert got["fifo"].reason == "fifo"
    assert got["sub"].reason == "directory"
    assert (got["notes.txt"].reason, got["notes.txt"].detail) == \
        ("not_core", "not an ELF core (wrong magic)")
    assert got["elf.so"].reason == "not_core" and "not a core" in got["elf.so"].detail
    assert got["core.0"].reason == "empty"
    assert got["linked"].reason == "hardlinked"
    assert got["core.ww"].reason == "world_writable"
    sd = got[f"core.nginx.33.{BOOT}.4242.1700000000000000.zst"]
    assert (sd.status, sd.format, sd.naming) == ("candidate", "zstd", "systemd")
    # Told by magic, not by name: a gzip stream named .zst is a gzip candidate.
    assert got["fake.zst"].format == "gzip"
    assert got["_usr_sbin_nginx.33.crash"].format == "apport-crash"
    assert got["bogus.crash"].reason == "not_apport"
    assert got["core.200"].status == "candidate" and got["core.200"].truncated is True
    assert got["core.200"].extent is not None and got["core.200"].extent > len(core) // 2
    assert (got["core.300"].status, got["core.300"].reason) == ("busy", "segments_past_end")
    # Nothing was changed.
    assert (d / "fifo").exists() and (d / "notes.txt").read_text() == "not a core\n"


def test_scan_sees_a_growing_core(tmp_path: Path, core: bytes) -> None:
    d = tmp_path / "cores"
    d.mkdir()
    path = d / "core"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, core[:4096])
    stop = threading.Event()

    def writer() -> None:
        off = 4096
        while not stop.is_set() and off < len(core):
            os.write(fd, core[off:off + 512])
            off += 512
            time.sleep(0.002)

    t = threading.Thread(target=writer)
    t.start()
    try:
        got = by_name(S.scan_dir(str(d), S.ScanOptions(interval=0.05, settle=0)))
    finally:
        stop.set()
        t.join()
        os.close(fd)
    assert (got["core"].status, got["core"].reason) in {("busy", "growing"),
                                                        ("busy", "segments_past_end")}


def test_scan_owner_rule(tmp_path: Path, core: bytes) -> None:
    d = tmp_path / "cores"
    d.mkdir()
    (d / "core.7").write_bytes(core[:8192])
    pattern = S.parse_core_pattern("core.%p", False)
    strict = S.ScanOptions(pattern=pattern, settle=0,
                           plausible_owner=lambda st, f: st.st_uid == 12345)
    assert by_name(S.scan_dir(str(d), strict))["core.7"].reason == "owner"


def test_scan_dir_refuses_a_symlinked_directory(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with pytest.raises(InputError, match="cannot open the directory"):
        S.scan_dir(str(tmp_path / "alias"))


def test_elf_extent(core: bytes) -> None:
    def read(off: int, n: int) -> bytes:
        return core[off:off + n]

    is_core, extent = S.elf_extent(core[:4096], read)
    assert is_core and extent == len(core)
    assert S.elf_extent(b"junk" * 10, read) == (False, None)
    assert S.elf_extent(io.BytesIO(core).read(10), read) == (False, None)


def test_writer_may_live(tmp_path: Path, core: bytes) -> None:
    now = time.time()
    assert S.writer_may_live(os.getpid(), now)  # we started before "now"
    assert not S.writer_may_live(os.getpid(), now - 10 * 86400)  # reused: started later
    assert not S.writer_may_live(None, now)
    assert not S.writer_may_live(2**22 + 12345, now)  # above pid_max: no such process
    # A cut core named for a live process that started before it was
    # written: busy, even past the settle time; taken once give_up passes.
    d = tmp_path / "cores"
    d.mkdir()
    (d / f"core.{os.getpid()}").write_bytes(core[: len(core) // 2])
    pattern = S.parse_core_pattern("core", True)
    busy = S.scan_dir(str(d), S.ScanOptions(pattern=pattern, settle=0))[0]
    assert (busy.status, busy.reason) == ("busy", "segments_past_end")
    assert f"pid {os.getpid()} still exists" in busy.detail
    taken = S.scan_dir(str(d), S.ScanOptions(pattern=pattern, settle=0, give_up=0))[0]
    assert (taken.status, taken.truncated) == ("candidate", True)


def test_crash_keys_after_the_core(tmp_path: Path, core: bytes) -> None:
    """Keys apport appends later (add_to_existing) follow the CoreDump: lines."""
    path = tmp_path / "r.crash"
    write_crash(path, core[:5000])
    with path.open("ab") as f:
        f.write(b"Tags: retraced\n")
    with path.open("rb") as f:
        assert S.read_crash_report(f).get("Tags") is None  # stopped at CoreDump:
        f.seek(0)
        full = S.read_crash_report(f, stop_at_core=False)
    assert full.get("Tags") == "retraced" and full.get("UserGroups") is None
    assert full.binary_keys == ("CoreDump",)
