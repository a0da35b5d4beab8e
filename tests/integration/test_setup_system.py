"""The OS side of crashkit setup: the checks on real processes and kernel settings,
and --system's drop-ins. Whatever a test changes on the host it restores; the
live values it writes are the ones already in effect."""

from __future__ import annotations

import json
import os
import pwd
import resource
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from crashkit.analysis.readiness import check_core_pattern, check_core_uses_pid, check_hard_limit
from crashkit.host import cores
from crashkit.host.proc import has_cap_sys_resource, read_sysctl
from crashkit.model.readiness import CORE_USES_PID, CoreSetting, Remedy
from crashkit.writers.dropins import SYSCTL_DROPIN, SYSTEMD_DROPIN, apply_remedies
from tests.conftest import check_schema, run_cli, unavailable
from tests.live_nginx import reachable_dir

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        unavailable("crashkit setup --system tests need root")


def setting(master: int | None = None, limit: int = 2 << 30) -> CoreSetting:
    nobody = pwd.getpwnam("nobody")
    return CoreSetting("nobody", nobody.pw_uid, nobody.pw_gid, "/var/lib/crashkit/cores", limit,
                       2, master)


def test_core_pattern_and_uses_pid_verdicts() -> None:
    s = setting()
    coredump = check_core_pattern("|/lib/systemd/systemd-coredump %P %u %g %s %t %c %h", s)
    assert coredump.status == "ok" and "/var/lib/systemd/coredump" in coredump.detail
    apport = check_core_pattern("|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u", s)
    assert apport.status == "warn" and "/var/crash" in apport.detail
    assert check_core_pattern("|/usr/bin/other %p", s).status == "warn"
    assert check_core_pattern("core", s).status == "ok"
    assert check_core_uses_pid("core", "0").remedy == Remedy("sysctl", CORE_USES_PID, "1")
    assert check_core_uses_pid("core.%p", "0").status == "ok"
    assert check_core_uses_pid("core", "1").status == "ok"
    assert check_core_uses_pid("|/x", "0").status == "skip"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose hard core limit is 1 MiB, still root."""
    def low() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, 1 << 20))
    p = subprocess.Popen(["sleep", "60"], preexec_fn=low)
    yield p
    p.kill()
    p.wait()


def test_hard_limit_of_a_real_process(sleeper: subprocess.Popen[bytes]) -> None:
    # With CAP_SYS_RESOURCE (root, usually) nginx's worker_rlimit_core can raise
    # the hard limit; without it (some containers drop it) setrlimit fails.
    check = check_hard_limit(setting(sleeper.pid), cores.gather(setting(sleeper.pid)))
    if has_cap_sys_resource(sleeper.pid):
        assert check.status == "ok" and check.detail.startswith("1.0 MiB (master PID")
        assert "CAP_SYS_RESOURCE" in check.detail
    else:
        assert check.status == "fail" and check.detail.startswith("1.0 MiB (master PID")
        assert "EPERM" in check.detail
    assert check_hard_limit(setting(sleeper.pid, limit=1 << 20),
                            cores.gather(setting(sleeper.pid, limit=1 << 20))).status == "ok"
    nobody = pwd.getpwnam("nobody")

    def drop() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, 1 << 20))
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    p = subprocess.Popen(["sleep", "60"], preexec_fn=drop)
    try:
        fail = check_hard_limit(setting(p.pid), cores.gather(setting(p.pid)))
        assert fail.status == "fail" and fail.remedy == Remedy("systemd", "LimitCORE", "infinity")
    finally:
        p.kill()
        p.wait()
    assert check_hard_limit(setting(None), cores.gather(setting(None))).status == "skip"


def test_system_with_a_root_prefix_writes_drop_ins_and_leaves_the_host(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"worker_processes 1;\npid {tmp_path}/nginx.pid;\n"
                    f"error_log {tmp_path}/e.log;\nevents {{}}\n")
    base = reachable_dir("setup-system")  # nobody (no user directive) must reach it
    cores = base / "cores"
    before = {k: read_sysctl(k) for k in ("kernel.core_pattern", CORE_USES_PID)}
    try:
        proc = run_cli("setup", "--conf", str(conf), "--core-dir", str(cores), "--apply",
                       "--system", "--system-root", str(tmp_path / "sysroot"), "--json")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(proc.stdout)
    assert {k: read_sysctl(k) for k in before} == before
    uses_pid = next(c for c in data["checks"] if c["name"] == CORE_USES_PID)
    sysctl = [s for s in data["system"] if s["kind"] == "sysctl"]
    if uses_pid["status"] == "warn":
        assert [(s["path"], s["applied"], s["live"]) for s in sysctl] == [
            (str(tmp_path / "sysroot" / SYSCTL_DROPIN), True, None)]
        dropin = (tmp_path / "sysroot" / SYSCTL_DROPIN).read_text()
        assert "\nkernel.core_uses_pid = 1\n" in dropin
        # The drop-in is written under --system-root, but the running kernel
        # still has core_uses_pid 0: the warning stands, exit 1.
        assert data["needs_attention"] is True and proc.returncode == 1
    else:
        assert sysctl == []


def test_live_apply_of_the_values_in_effect() -> None:
    """The real path: /etc/sysctl.d and /proc/sys written, with the current value."""
    current = read_sysctl(CORE_USES_PID)
    pattern = read_sysctl("kernel.core_pattern")
    if current is None:
        unavailable("no /proc/sys/kernel/core_uses_pid")
    dropin = Path("/") / SYSCTL_DROPIN
    saved = dropin.read_bytes() if dropin.exists() else None
    try:
        changes = apply_remedies([Remedy("sysctl", CORE_USES_PID, current)])
        assert [(c.kind, c.path) for c in changes] == [("sysctl", str(dropin))]
        assert changes[0].live == f"{CORE_USES_PID}: {current} -> {current}"
        assert f"\n{CORE_USES_PID} = {current}\n" in dropin.read_text()
        assert oct(dropin.stat().st_mode & 0o777) == "0o644"
    finally:
        if saved is None:
            dropin.unlink(missing_ok=True)
        else:
            dropin.write_bytes(saved)
        Path("/proc/sys/kernel/core_uses_pid").write_text(current + "\n")
    assert read_sysctl(CORE_USES_PID) == current
    assert read_sysctl("kernel.core_pattern") == pattern


def test_systemd_drop_in(tmp_path: Path) -> None:
    changes = apply_remedies([Remedy("systemd", "LimitCORE", "infinity")], str(tmp_path))
    path = tmp_path / SYSTEMD_DROPIN
    assert [(c.kind, c.path, c.live) for c in changes] == [("systemd", str(path), None)]
    assert path.read_text().endswith("[Service]\nLimitCORE=infinity\n")


def test_collect_service_installed_and_undone(tmp_path: Path) -> None:
    """setup --apply --collect writes crashkit-collect.service under the
    system root (systemd itself left alone there); --undo --collect takes it
    away with the config's changes."""
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"worker_processes 1;\npid {tmp_path}/nginx.pid;\n"
                    f"error_log {tmp_path}/e.log;\nevents {{}}\n")
    base = reachable_dir("setup-collect")
    root = tmp_path / "sysroot"
    unit = root / "etc/systemd/system/crashkit-collect.service"
    store = tmp_path / "store"
    try:
        dry = run_cli("setup", "--conf", str(conf), "--core-dir", str(base / "cores"),
                      "--collect", "--system-root", str(root), "--json")
        assert json.loads(dry.stdout)["collect_unit"]["action"] == "would_install"
        assert not unit.exists()
        proc = run_cli("setup", "--conf", str(conf), "--core-dir", str(base / "cores"),
                       "--apply", "--collect", "--store", str(store), "--system-root",
                       str(root), "--json")
        assert proc.returncode in (0, 1), proc.stderr
        data = json.loads(proc.stdout)
        assert data["collect_unit"] == {"path": str(unit), "action": "installed", "live": None}
        assert f"collect --watch --store {store}\n" in unit.read_text()
        undo = run_cli("setup", "--conf", str(conf), "--undo", "--collect", "--system-root",
                       str(root), "--json")
        assert undo.returncode in (0, 1), undo.stderr
        assert json.loads(undo.stdout)["collect_unit"]["action"] == "removed"
        assert not unit.exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def sysctl_tree(base: Path, uses_pid: str = "0", pattern: str = "core") -> Path:
    """A private stand-in for /proc/sys (setup's hidden --sysctl-root): the
    checks read it and --system writes it, the machine's kernel is untouched."""
    root = base / "proc-sys"
    for key, value in (("kernel/core_pattern", pattern), ("kernel/core_uses_pid", uses_pid),
                       ("fs/suid_dumpable", "0")):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_text(value + "\n")
    return root


def system_apply(tmp_path: Path, name: str, *extra: str) -> tuple[subprocess.CompletedProcess[str],
                                                                    Path, Path]:
    """setup --apply --system on a private config, system root and sysctl root."""
    work = tmp_path / name
    work.mkdir()
    conf = work / "nginx.conf"
    conf.write_text(f"worker_processes 1;\npid {work}/nginx.pid;\n"
                    f"error_log {work}/e.log;\nevents {{}}\n")
    base = reachable_dir(f"setup-{name}")
    sysctls = sysctl_tree(work)
    try:
        proc = run_cli("setup", "--conf", str(conf), "--core-dir", str(base / "cores"),
                       "--apply", "--system", "--system-root", str(work / "sysroot"),
                       "--sysctl-root", str(sysctls), *extra)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return proc, work, sysctls


def test_system_apply_shows_the_checks_after_the_fix(tmp_path: Path) -> None:
    """The checks are run again after --system: core_uses_pid was 0 (a
    warning), --system set it, and setup says it is fixed, not the warning
    it had before; exit 0. The machine's own sysctls are never written."""
    before = {k: read_sysctl(k) for k in ("kernel.core_pattern", CORE_USES_PID)}
    proc, _work, sysctls = system_apply(tmp_path, "json", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    check_schema(data)
    uses_pid = next(c for c in data["checks"] if c["name"] == CORE_USES_PID)
    assert (uses_pid["status"], uses_pid["fixed"]) == ("ok", True)
    assert uses_pid["detail"] == "core file names end in the crashing process's pid"
    assert [c["name"] for c in data["checks"] if c["fixed"]] == [CORE_USES_PID]
    assert (sysctls / "kernel/core_uses_pid").read_text() == "1\n"
    [change] = data["system"]
    assert change["live"] == f"{CORE_USES_PID}: 0 -> 1"
    assert data["needs_attention"] is False
    assert {k: read_sysctl(k) for k in before} == before

    text, _work, _ = system_apply(tmp_path, "text")
    assert text.returncode == 0, text.stdout + text.stderr
    lines = text.stdout.splitlines()
    assert f"  [fixed] {CORE_USES_PID}: core file names end in the crashing process's pid" \
        in lines
    assert not [x for x in lines if "[WARN]" in x], text.stdout
    assert {k: read_sysctl(k) for k in before} == before


@pytest.fixture
def applied(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """setup --apply --system done on a private config, system root and
    sysctl root, into a core directory two levels of which setup created."""
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"worker_processes 1;\npid {tmp_path}/nginx.pid;\n"
                    f"error_log {tmp_path}/e.log;\nevents {{}}\n")
    base = reachable_dir("setup-undo")
    paths = {"conf": conf, "original": tmp_path / "original", "base": base,
             "made": base / "made", "cores": base / "made" / "cores",
             "sysroot": tmp_path / "sysroot", "sysctls": sysctl_tree(tmp_path)}
    paths["original"].write_bytes(conf.read_bytes())
    try:
        proc = run_cli("setup", "--conf", str(conf), "--core-dir", str(paths["cores"]),
                       "--apply", "--system", "--system-root", str(paths["sysroot"]),
                       "--sysctl-root", str(paths["sysctls"]))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (paths["sysctls"] / "kernel/core_uses_pid").read_text() == "1\n"
        assert (paths["sysroot"] / SYSCTL_DROPIN).is_file() and paths["cores"].is_dir()
        yield paths
    finally:
        shutil.rmtree(base, ignore_errors=True)


def undo(p: dict[str, Path], *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("setup", "--conf", str(p["conf"]), "--undo", "--system-root",
                   str(p["sysroot"]), "--sysctl-root", str(p["sysctls"]), *extra)


def test_undo_takes_back_everything_apply_did(applied: dict[str, Path]) -> None:
    """The config byte-exact, the sysctl drop-in gone, the kernel setting back
    to the value before, the directories setup created gone (they were
    empty), and undo says that nginx must be reloaded (here: started)."""
    p = applied
    proc = undo(p, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    check_schema(data)
    assert p["conf"].read_bytes() == p["original"].read_bytes()
    assert not (p["sysroot"] / SYSCTL_DROPIN).exists()
    assert (p["sysctls"] / "kernel/core_uses_pid").read_text() == "0\n"
    assert not p["made"].exists() and p["base"].is_dir()
    assert [(u["kind"], u["what"], u["action"]) for u in data["undone"]] == [
        ("file", str(p["sysroot"] / SYSCTL_DROPIN), "removed"),
        ("sysctl", CORE_USES_PID, "restored"),
        ("directory", str(p["cores"]), "removed"),
        ("directory", str(p["made"]), "removed")]
    assert data["notes"] == ["nginx is not running: the restored config applies when it starts"]
    assert [x.name for x in p["conf"].parent.iterdir() if x.name.startswith(".")] == []
    again = undo(p, "--json")
    assert "nothing to undo" in json.loads(again.stdout)["notes"][0]


def test_undo_says_what_it_leaves_and_why(applied: dict[str, Path]) -> None:
    """A core in the directory, a kernel setting changed since and an edited
    drop-in are left as they are, each with the reason; the rest goes back."""
    p = applied
    (p["cores"] / "core.1234").write_bytes(b"core")
    (p["sysctls"] / "kernel/core_uses_pid").write_text("2\n")
    dropin = p["sysroot"] / SYSCTL_DROPIN
    dropin.write_text(dropin.read_text() + "kernel.core_pattern = core.%p\n")
    proc = undo(p)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert f"left {dropin}: changed since crashkit wrote it: yours now, remove it yourself" \
        in lines
    assert f"left {CORE_USES_PID}: 2: changed since crashkit set it to 1; left as it is" in lines
    assert (f"left {p['cores']}: not empty (1 entry: cores are kept; remove it yourself once "
            "they are not needed)") in lines
    assert "nginx is not running: the restored config applies when it starts" in lines
    assert p["conf"].read_bytes() == p["original"].read_bytes()
    assert dropin.exists() and (p["cores"] / "core.1234").exists()
    assert (p["sysctls"] / "kernel/core_uses_pid").read_text() == "2\n"
