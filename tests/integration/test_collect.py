"""crashkit collect, list and show through the real command line, on real
crash cores laid out as each source keeps them, into a private store.

systemd-coredump is not installed on this machine (its package's postinst
changes kernel.core_pattern, which tests must not touch), so its files are
made exactly as its documentation names, compresses and tags them
(systemd-coredump(8): core.COMM.UID.BOOTID.PID.USEC.zst, user.coredump.*
xattrs). apport's .crash is written as apport writes it (a CoreDump: field
holding base64 of a gzip stream, RFC 822 continuation lines)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tests.conftest import check_schema, fixture, run_cli, unavailable

pytestmark = pytest.mark.integration

BOOT = "0123456789abcdef0123456789abcdef"


def collect(store: Path, *args: str) -> dict[str, Any]:
    proc = run_cli("collect", "--store", str(store), "--json", *args)
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    check_schema(data)
    return data


def listing(store: Path, *args: str) -> dict[str, Any]:
    proc = run_cli("list", "--store", str(store), "--json", *args, check=True)
    data: dict[str, Any] = json.loads(proc.stdout)
    check_schema(data)
    return data


def outcomes(data: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["outcome"] for s in data["sources"] for f in s["files"]}


def copy_core(manifest: dict[str, Any], name: str, dest: Path, extra: bytes = b"") -> Path:
    """A copy of a fixture's core; ``extra`` bytes appended make another
    core of the same crash (the store knows a core by its content)."""
    src = Path(fixture(manifest, name)["core"])
    shutil.copyfile(src, dest)
    if extra:
        with dest.open("ab") as f:
            f.write(extra)
    return dest


def test_directory_source_takes_cores_and_leaves_the_rest(tmp_path: Path,
                                                          manifest: dict[str, Any]) -> None:
    src = tmp_path / "cores"
    src.mkdir()
    copy_core(manifest, "nginx-null", src / "core.1001")
    copy_core(manifest, "nginx-libc", src / "core.1002")
    (src / "notes.txt").write_text("not a core\n")
    (src / "core.empty").write_bytes(b"")
    os.symlink(fixture(manifest, "nginx-abort")["core"], src / "core.link")
    os.mkfifo(src / "core.fifo")
    (src / "core.bad.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 10)
    store = tmp_path / "store"

    dry = collect(store, "--only-from", "--from", str(src), "--dry-run")
    assert outcomes(dry)["core.1001"] == "would_store" and not store.exists()

    data = collect(store, "--only-from", "--from", str(src))
    got = outcomes(data)
    assert got["core.1001"] == got["core.1002"] == "stored"
    assert got["core.link"] == got["core.fifo"] == got["notes.txt"] == "rejected"
    assert got["core.bad.zst"] == "failed"  # not zstd inside: refused, kept where it was
    assert data["counts"]["stored"] == 2
    left = sorted(p.name for p in src.iterdir())
    # Taken cores are gone from the source; everything else is where it was.
    assert left == ["core.bad.zst", "core.empty", "core.fifo", "core.link", "notes.txt"]
    assert (store.stat().st_mode & 0o777) == 0o700
    # Run again: nothing new, nothing doubled.
    again = collect(store, "--only-from", "--from", str(src))
    assert again["counts"]["stored"] == 0
    lst = listing(store)
    assert lst["total"] == 2 and len(lst["groups"]) == 2
    null = next(f for s in data["sources"] for f in s["files"] if f["name"] == "core.1001")
    expected = run_cli("analyze", fixture(manifest, "nginx-null")["core"], "--json", check=True)
    assert null["signature"] == json.loads(expected.stdout)["signature"]["hash"]


def test_same_bug_from_two_processes_is_one_row(tmp_path: Path,
                                                manifest: dict[str, Any]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    # Two runs of the threaded program (6 and 66 threads, other pids and
    # addresses) that die of the same bug.
    copy_core(manifest, "mt-plugin", src / "core.2001")
    copy_core(manifest, "mt-64", src / "core.2002")
    copy_core(manifest, "nginx-null", src / "core.2003")
    store = tmp_path / "store"
    collect(store, "--only-from", "--from", str(src))
    groups = {g["signature"]: g for g in listing(store)["groups"]}
    assert sorted(g["count"] for g in groups.values()) == [1, 2]
    two = next(g for g in groups.values() if g["count"] == 2)
    assert two["blamed_function"] == "plugin_parse_record" and two["stored"] == 2
    assert two["worst_confidence"] == "high"
    assert sum(two["histogram"]) == 2


def test_systemd_and_apport_files(tmp_path: Path, manifest: dict[str, Any]) -> None:
    root = tmp_path / "root"
    sd = root / "var/lib/systemd/coredump"
    sd.mkdir(parents=True)
    raw = Path(fixture(manifest, "nginx-null")["core"]).read_bytes()
    usec = 1_764_000_000_123_456
    name = f"core.nginx.33.{BOOT}.4242.{usec}.zst"
    (sd / name).write_bytes(zstandard.ZstdCompressor().compress(raw))
    for key, value in (("pid", "4242"), ("uid", "33"), ("signal", "11"), ("comm", "nginx"),
                       ("exe", "/usr/sbin/nginx"), ("timestamp", str(usec))):
        os.setxattr(sd / name, f"user.coredump.{key}", value.encode())
    crash_dir = root / "var/crash"
    crash_dir.mkdir(parents=True)
    other = Path(fixture(manifest, "nginx-libc")["core"]).read_bytes()
    b64 = base64.b64encode(gzip.compress(other)).decode()
    body = "\n".join(" " + b64[i:i + 76] for i in range(0, len(b64), 76))
    report = (f"ProblemType: Crash\nExecutablePath: /usr/sbin/nginx\nSignal: 11\n"
              f"CoreDump: base64\n{body}\n")
    (crash_dir / "_usr_sbin_nginx.33.crash").write_text(report)
    (crash_dir / "_usr_bin_x.0.crash").write_text("ProblemType: Crash\nSignal: 6\n")
    store = tmp_path / "store"
    data = collect(store, "--only-from", "--from", str(sd), "--from", str(crash_dir))
    got = outcomes(data)
    assert got[name] == "stored" and got["_usr_sbin_nginx.33.crash"] == "stored"
    assert got["_usr_bin_x.0.crash"] == "failed"  # no CoreDump: said, and left alone
    assert not (sd / name).exists()  # named by --from: moved (the auto source is copied)
    assert (crash_dir / "_usr_sbin_nginx.33.crash").exists()  # a report is never removed
    row = run_cli("show", "1", "--store", str(store), "--json", check=True)
    shown = json.loads(row.stdout)
    check_schema(shown)
    assert shown["pid"] == json.loads(run_cli("analyze", "--no-gdb", "--json",
                                              fixture(manifest, "nginx-null")["core"],
                                              check=True).stdout)["core"]["pid"]
    assert shown["time"] == "2025-11-24T16:00:00+00:00"  # from systemd's name, not the mtime


def test_auto_sources_leave_tool_stores_alone(tmp_path: Path, manifest: dict[str, Any]) -> None:
    """systemd-coredump's and apport's own stores are copied from, never
    emptied (coredumpctl and apport keep working); the config's
    working_directory is found as setup finds it."""
    root = tmp_path / "root"
    sd = root / "var/lib/systemd/coredump"
    sd.mkdir(parents=True)
    raw = Path(fixture(manifest, "nginx-abort")["core"]).read_bytes()
    name = f"core.nginx.0.{BOOT}.777.1764000000000000.zst"
    (sd / name).write_bytes(zstandard.ZstdCompressor().compress(raw))
    wd = tmp_path / "wd"
    wd.mkdir()
    copy_core(manifest, "nginx-null", wd / "core")
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"working_directory {wd};\nerror_log {tmp_path}/error.log;\n"
                    "events {}\n")
    (tmp_path / "error.log").write_text(
        "2026/12/01 10:00:00 [alert] 100#100: worker process 4711 exited on signal 9\n"
        "2026/12/01 10:00:05 [alert] 100#100: worker process 4712 exited on signal 11 "
        "(core dumped)\n")
    store = tmp_path / "store"
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    data = collect(store, "--root", str(root), "--conf", str(conf))
    kinds = {s["kind"]: s for s in data["sources"]}
    assert kinds["systemd"]["keeps_source"] is True
    assert outcomes(data)[name] == "stored" and (sd / name).exists()
    if not pattern.startswith("/") and not pattern.startswith("|"):
        wds = [s["path"] for s in data["sources"] if s["kind"] == "working_directory"]
        assert wds == [str(wd), str(root / "var/lib/crashkit/cores")]
        assert outcomes(data)["core"] == "stored" and not (wd / "core").exists()
    # The SIGKILLed worker, from the config's error log, counted without a core.
    (killed,) = data["log_crashes"]
    assert (killed["pid"], killed["signal"], killed["new"]) == (4711, 9, True)
    groups = listing(store)["groups"]
    nocore = [g for g in groups if g["no_core"]]
    assert len(nocore) == 1 and nocore[0]["signature_text"] == "SIGKILL | program:nginx | no core"
    again = collect(store, "--root", str(root), "--conf", str(conf))
    assert again["log_crashes"][0]["new"] is False and again["counts"]["stored"] == 0
    relative = not pattern.startswith(("/", "|"))
    assert listing(store)["total"] == 2 + relative


def test_flood_and_retention(tmp_path: Path, manifest: dict[str, Any]) -> None:
    src = tmp_path / "flood"
    src.mkdir()
    for i in range(8):  # a respawn storm: the same crash, eight distinct cores
        core = copy_core(manifest, "nginx-null", src / f"core.{3000 + i}", bytes([i]))
        t = 1_764_000_000 + 10 * i
        os.utime(core, (t, t))
    copy_core(manifest, "nginx-libc", src / "core.4000")
    store = tmp_path / "store"
    data = collect(store, "--only-from", "--from", str(src), "--flood", "2", "--no-gdb")
    assert data["counts"]["stored"] == 9
    assert len(data["pruned"]) == 5  # 8 of one signature: the first 2 and the latest kept
    (g,) = [g for g in listing(store)["groups"] if g["count"] == 8]
    assert (g["stored"], g["counted"]) == (3, 5)
    assert len(list((store / "crashes").iterdir())) == 4
    text = run_cli("list", "--store", str(store), check=True).stdout
    assert "8 crashes (3 stored, 5 counted without their cores)" in text
    # Retention: at most one per signature; never the only one.
    kept = collect(store, "--only-from", "--from", str(src), "--keep-per-signature", "1")
    assert len(kept["pruned"]) == 2
    assert {(g["count"], g["stored"]) for g in listing(store)["groups"]} == {(8, 1), (1, 1)}


def test_analyze_and_report_a_store_id(tmp_path: Path, manifest: dict[str, Any]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    copy_core(manifest, "nginx-null", src / "core.5001")
    store = tmp_path / "store"
    data = collect(store, "--only-from", "--from", str(src), "--keep-sources")
    assert (src / "core.5001").exists()  # --keep-sources
    (crash_id,) = [f["crash_id"] for s in data["sources"] for f in s["files"]]
    by_id = json.loads(run_cli("analyze", str(crash_id), "--store", str(store), "--json",
                               check=True).stdout)
    by_path = json.loads(run_cli("analyze", str(src / "core.5001"), "--json",
                                 check=True).stdout)
    assert by_id["signature"] == by_path["signature"]
    assert by_id["verdict"]["summary"] == by_path["verdict"]["summary"]
    out = tmp_path / "out"
    out.mkdir()
    rep = run_cli("report", str(crash_id), "--out", str(out), "--json",
                  env={"CRASHKIT_STORE": str(store)}, check=True)
    assert Path(json.loads(rep.stdout)["bundle"]).is_file()
    missing = run_cli("analyze", "99", "--store", str(store))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "no crash 99 in the store" in missing.stderr


def test_compressed_core_analyzed_directly(tmp_path: Path, manifest: dict[str, Any]) -> None:
    raw = Path(fixture(manifest, "nginx-null")["core"])
    zst = tmp_path / f"core.nginx.33.{BOOT}.1.1.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(raw.read_bytes()))
    a = json.loads(run_cli("analyze", str(zst), "--json", check=True).stdout)
    b = json.loads(run_cli("analyze", str(raw), "--json", check=True).stdout)
    assert a["signature"] == b["signature"] and a["core"]["path"] == str(zst)


def test_damaged_index_and_reindex(tmp_path: Path, manifest: dict[str, Any]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    copy_core(manifest, "nginx-null", src / "core.6001")
    copy_core(manifest, "nginx-libc", src / "core.6002")
    store = tmp_path / "store"
    collect(store, "--only-from", "--from", str(src), "--no-gdb")
    index = store / "index.sqlite"
    with index.open("r+b") as f:
        f.write(b"this is not sqlite" * 8)
    bad = run_cli("list", "--store", str(store))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "crashkit collect --reindex" in bad.stderr and str(index) in bad.stderr
    done = collect(store, "--reindex", "--no-gdb")
    assert done["reindexed"] == 2
    assert listing(store)["total"] == 2
    assert any(p.name.startswith("index.sqlite.damaged-") for p in store.iterdir())


def test_watch_stores_a_real_nginx_crash(tmp_path: Path, manifest: dict[str, Any],
                                         live_nginx_ready: None) -> None:
    from tests.live_nginx import LiveNginx, basic_conf, free_port, http_get, worker_tmpdir

    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    module = fixture(manifest, "nginx-null")["module"]
    with worker_tmpdir("crashkit-watch-") as wd:
        where = Path(pattern).parent if pattern.startswith("/") else wd
        port = free_port()
        conf = basic_conf(port, main=f"working_directory {wd};\nworker_rlimit_core 500M;",
                          load_module=module, server="location /null { crashkit_crash null; }\n")
        store = tmp_path / "store"
        watcher = subprocess.Popen(
            [sys.executable, "-m", "crashkit", "collect", "--watch", "--only-from",
             "--from", str(where), "--store", str(store), "--no-gdb", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)  # its first pass, then it waits on inotify
            with LiveNginx(tmp_path / "ngx", conf) as ngx:
                (worker,) = ngx.worker_pids()
                http_get(f"http://127.0.0.1:{port}/null")
                ngx.wait_log(f"worker process {worker} exited on signal 11")
                t0 = time.monotonic()
                assert watcher.stdout is not None
                line = watcher.stdout.readline()  # one JSON document per pass that stored
                took = time.monotonic() - t0
        finally:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=30)
        got = json.loads(line)
        check_schema(got)
        stored = [f for s in got["sources"] for f in s["files"] if f["outcome"] == "stored"]
        assert len(stored) == 1 and took < 10
        shown = json.loads(run_cli("show", str(stored[0]["crash_id"]), "--store", str(store),
                                   "--json", check=True).stdout)
        assert shown["pid"] == worker and shown["signal"]["name"] == "SIGSEGV"


def test_collect_unit_installs_runs_and_goes(tmp_path: Path) -> None:
    """The service `setup --collect` installs starts this very crashkit: its
    ExecStart, run with --dry-run in place of --watch, works; removal takes
    only crashkit's own unit."""
    import shlex

    from crashkit.errors import CrashkitError
    from crashkit.writers import units

    root = tmp_path / "root"
    store = tmp_path / "store"
    made = units.install(str(store), str(root))
    assert made.action == "installed" and made.live is None  # a private root: systemd untouched
    text = Path(made.path).read_text()
    (exec_line,) = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    argv = shlex.split(exec_line.removeprefix("ExecStart="))
    assert argv[-4:] == ["collect", "--watch", "--store", str(store)]
    dry = subprocess.run([*argv[:-3], "--dry-run", "--only-from", "--from", str(tmp_path),
                          "--store", str(store), "--json"], capture_output=True, text=True,
                         timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["dry_run"] is True
    assert units.install(str(store), str(root)).action == "unchanged"
    assert units.remove(str(root)).action == "removed" and not Path(made.path).exists()
    assert units.remove(str(root)).action == "absent"
    Path(made.path).write_text("[Service]\nExecStart=/bin/true\n")
    with pytest.raises(CrashkitError, match="not written by crashkit"):
        units.remove(str(root))
    assert Path(made.path).exists()


def test_core_pattern_directory_names_read_back(tmp_path: Path,
                                                manifest: dict[str, Any]) -> None:
    """An absolute core_pattern (given here: this machine's may not be
    changed by a test) makes its directory a source, and its %e.%p.%t names
    give program, pid and time."""
    d = tmp_path / "dumps"
    d.mkdir()
    copy_core(manifest, "nginx-null", d / "core.nginx.4321.1764000000")
    copy_core(manifest, "nginx-libc", d / "unrelated-name")
    store = tmp_path / "store"
    data = collect(store, "--core-pattern", f"{d}/core.%e.%p.%t", "--root",
                   str(tmp_path / "r"), "--no-gdb")
    (src,) = [s for s in data["sources"] if s["kind"] == "core_pattern"]
    assert src["path"] == str(d) and src["why"] == f"kernel.core_pattern is '{d}/core.%e.%p.%t'"
    got = outcomes(data)
    # A core not named by the pattern is still a core: taken too.
    assert got == {"core.nginx.4321.1764000000": "stored", "unrelated-name": "stored"}
    first = next(f for f in src["files"] if f["name"].startswith("core.nginx"))
    shown = json.loads(run_cli("show", str(first["crash_id"]), "--store", str(store), "--json",
                               check=True).stdout)
    assert shown["time"] == "2025-11-24T16:00:00+00:00"


def _oom_lines(stamp: str, pid: int, comm: str) -> str:
    """The two lines the kernel (6.1) writes for one OOM kill, as
    ``journalctl -k -o short-iso`` shows them."""
    return (f"{stamp} host kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),"
            f"cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/nginx.service,"
            f"task={comm},pid={pid},uid=33\n"
            f"{stamp} host kernel: Out of memory: Killed process {pid} ({comm}) "
            "total-vm:1183952kB, anon-rss:1048576kB, file-rss:1024kB, shmem-rss:0kB, "
            "UID:33 pgtables:2140kB oom_score_adj:0\n")


def test_workers_dead_without_a_core_are_linked_to_oom_kills(
        tmp_path: Path, live_nginx_ready: None) -> None:
    """A real nginx whose two workers are killed with SIGKILL: its master
    logs both exits without "(core dumped)". A kernel log (a saved journal)
    names an OOM kill of the first worker's pid at that time, and of the
    second's pid two hours before (another process then: not this crash),
    and of a gdb: the first exit is an OOM kill, the second a plain SIGKILL,
    the old kill a crash of its own, gdb's none of nginx's. OOM kills group
    in their own row of the list, marked as such; a second collect counts
    nothing twice."""
    from datetime import datetime

    from tests.live_nginx import LiveNginx, basic_conf, free_port

    port = free_port()
    conf = basic_conf(port).replace("worker_processes 1;", "worker_processes 2;")
    with LiveNginx(tmp_path / "ngx", conf) as ngx:
        deadline = time.monotonic() + 10
        while len(ngx.worker_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        first, second = sorted(ngx.worker_pids())
        master = ngx.master_pid
        killed_at = time.time()
        for pid in (first, second):
            os.kill(pid, signal.SIGKILL)
            ngx.wait_log(f"worker process {pid} exited on signal 9")
        error_log = ngx.error_log
    assert "exited on signal 9 (core dumped)" not in error_log.read_text()

    def stamp(t: float) -> str:
        return datetime.fromtimestamp(t).astimezone().isoformat(timespec="microseconds")

    kern = tmp_path / "kern.log"
    kern.write_text(
        f"{stamp(killed_at - 9000)} host kernel: Linux version 6.1.0-28-amd64\n"
        + _oom_lines(stamp(killed_at - 7200), second, "nginx")
        + _oom_lines(stamp(killed_at - 3600), 4242, "gdb")
        + _oom_lines(stamp(killed_at - 0.5), first, "nginx"))
    empty = tmp_path / "no-cores"
    empty.mkdir()
    store = tmp_path / "store"
    args = ("--only-from", "--from", str(empty), "--error-log", str(error_log),
            "--kernel-log", str(kern), "--no-gdb")
    data = collect(store, *args)
    got = {(c["pid"], c["cause"]): c for c in data["log_crashes"]}
    assert set(got) == {(first, "oom-kill"), (second, "sigkill"), (second, "oom-kill")}
    assert all(c["new"] for c in got.values())
    oom = got[(first, "oom-kill")]
    assert oom["log"] == str(error_log) and oom["line"].endswith(
        f"#{master}: worker process {first} exited on signal 9")
    assert oom["kernel_line"].startswith(f"Out of memory: Killed process {first} (nginx)")
    assert got[(second, "sigkill")]["kernel_line"] is None
    old = got[(second, "oom-kill")]
    assert old["log"] == str(kern) and old["kernel_line"] == old["line"]

    groups = {g["signature_text"]: g for g in listing(store)["groups"]}
    assert set(groups) == {"SIGKILL | program:nginx | OOM killer | no core",
                           "SIGKILL | program:nginx | no core"}
    ooms = groups["SIGKILL | program:nginx | OOM killer | no core"]
    assert (ooms["count"], ooms["no_core"], ooms["stored"]) == (2, 2, 0)
    assert "OOM killer" in ooms["summary"]
    kills = groups["SIGKILL | program:nginx | no core"]
    assert (kills["count"], kills["no_core"]) == (1, 1)
    assert "not by the OOM killer" in kills["summary"]
    table = run_cli("list", "--store", str(store), check=True).stdout
    assert f"{ooms['signature']}  2 crashes (0 stored, 2 without a core (from logs))" in table
    assert "killed by the kernel's OOM killer" in table

    again = collect(store, *args)
    assert not any(c["new"] for c in again["log_crashes"])
    assert listing(store)["total"] == 3
    shown = json.loads(run_cli("show", str(oom["crash_id"]), "--store", str(store), "--json",
                               check=True).stdout)
    assert shown["evidence"] == "log" and shown["pid"] == first


def test_the_hosts_own_kernel_log_is_placed_in_time() -> None:
    """What collect reads without --kernel-log: this host's /dev/kmsg (root
    reads it whatever kernel.dmesg_restrict says), every record stamped as
    dmesg prints it and placed between the boot and now; the OOM kills in it
    (this machine's, if any) with such times."""
    from crashkit.formats.kernel_log import line_time
    from crashkit.host import kernlog

    if os.geteuid() != 0:
        unavailable("reading /dev/kmsg with kernel.dmesg_restrict needs root")
    log = kernlog.read_kernel_log(timed=True)
    assert log.source == "/dev/kmsg" and log.lines
    boot, now = kernlog.boot_time(), time.time()
    for line in log.lines:
        when, _rest = line_time(line, boot=boot, year=time.localtime().tm_year)
        assert when is not None and boot - 1 <= when <= now + 1, line
    for e in kernlog.oom_events(log, boot=boot):
        assert e.time is not None and boot - 1 <= e.time <= now + 1


@pytest.mark.parametrize("name", ["nginx-null", "mt-plugin"])
def test_a_compressed_copy_is_indexed_as_the_linked_core(
        tmp_path: Path, manifest: dict[str, Any], name: str) -> None:
    """A core from another filesystem is stored zstd-compressed, and with
    --no-gdb its facts are read from the compressed copy's front, in memory
    (no decompressed copy on disk): the index holds what it holds for the
    same core linked from the store's own filesystem."""
    same = tmp_path / "same"
    same.mkdir()
    copy_core(manifest, name, same / "core.4242")
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        unavailable("/dev/shm is not another filesystem here")
    other = Path(tempfile.mkdtemp(prefix="crashkit-test-", dir=shm))
    try:
        copy_core(manifest, name, other / "core.4242")
        shown = {}
        for label, src in (("linked", same), ("copied", other)):
            store = tmp_path / f"store-{label}"
            data = collect(store, "--only-from", "--from", str(src), "--no-gdb")
            (f,) = [f for s in data["sources"] for f in s["files"]]
            assert f["outcome"] == "stored" and f["method"] == ("link" if label == "linked"
                                                               else "copy")
            shown[label] = json.loads(run_cli("show", str(f["crash_id"]), "--store", str(store),
                                              "--json", check=True).stdout)
    finally:
        shutil.rmtree(other)
    assert shown["copied"]["compression"] == "zstd" and shown["linked"]["compression"] is None
    keys = ("pid", "exe", "exe_build_id", "signal", "truncated", "signature",
            "summary", "blamed_module", "blamed_function", "confidence", "modules", "size",
            "sha256", "analysis")
    assert {k: shown["copied"][k] for k in keys} == {k: shown["linked"][k] for k in keys}
    assert shown["copied"]["modules"] and all(m["build_id"] for m in shown["copied"]["modules"])
    from crashkit.commands.analyze import fits_front

    assert fits_front(shown["copied"]["core"])  # the path collect took for it
