"""setup's dry run leaves the disk as it was (issue 18 part 7), with the real nginx -t.

nginx -t creates the pid file and every log file it opens, and makes and
chowns the temp paths; setup's check runs it in a private mount namespace
where those directories are overlays on a tmpfs. Each test builds a private
prefix and compares a recursive listing (names, types, modes, owners, sizes,
mtimes, ctimes) before and after.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, unavailable
from tests.live_nginx import NGINX, WORKER_USER, reachable_dir

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_root_and_nginx() -> None:
    if os.geteuid() != 0:
        unavailable("setup's dry-run tests need root (nginx -t as root, mount namespaces)")
    if not os.access(NGINX, os.X_OK):
        unavailable(f"{NGINX} is not installed")


@pytest.fixture
def cores() -> Iterator[Path]:
    d = reachable_dir("setup-dry")
    yield d / "cores"
    shutil.rmtree(d, ignore_errors=True)


def listing(top: Path) -> list[tuple[str, int, int, int, int, int, int]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out.append((os.path.relpath(p, top), st.st_mode, st.st_uid, st.st_gid,
                        st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return sorted(out)


def leftovers() -> set[str]:
    return {x for x in os.listdir(tempfile.gettempdir())
            if x.startswith(("crashkit-check-", "crashkit-ns-"))}


def write_conf(prefix: Path) -> Path:
    """Missing pid, error and access logs (absolute and prefix-relative) and
    temp paths, besides an existing log with content and an existing temp
    directory that nginx -t would chown to the worker user."""
    (prefix / "conf").mkdir(parents=True)
    (prefix / "logs").mkdir()
    (prefix / "var").mkdir()
    (prefix / "logs" / "old.log").write_text("a line of yesterday\n")
    (prefix / "var" / "proxy").mkdir()  # root's: nginx -t chowns it to www-data
    conf = prefix / "conf" / "nginx.conf"
    conf.write_text(
        f"user {WORKER_USER};\nworker_processes 1;\npid logs/nginx.pid;\n"
        f"error_log {prefix}/logs/error.log;\nerror_log logs/old.log warn;\n"
        "events { worker_connections 16; }\n"
        "http {\n"
        f"    access_log {prefix}/logs/access.log;\n"
        "    client_body_temp_path var/body;\n"
        "    proxy_temp_path var/proxy;\n"
        "    fastcgi_temp_path var/fastcgi;\n    uwsgi_temp_path var/uwsgi;\n"
        "    scgi_temp_path var/scgi;\n"
        f"    proxy_cache_path {prefix}/var/cache levels=1:2 keys_zone=z:1m;\n"
        "    server { listen 127.0.0.1:1; access_log logs/server.log; }\n"
        "}\n")
    return conf


CREATED = ("logs/nginx.pid", "logs/error.log", "logs/access.log", "logs/server.log",
           "var/body", "var/fastcgi", "var/uwsgi", "var/scgi", "var/cache")


def test_plain_nginx_t_would_change_this_prefix(tmp_path: Path) -> None:
    # The premise: nginx -t itself creates all of them and chowns var/proxy.
    prefix = tmp_path / "p"
    conf = write_conf(prefix)
    proc = subprocess.run([NGINX, "-p", str(prefix), "-t", "-c", str(conf)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert all((prefix / x).exists() for x in CREATED)
    assert (prefix / "var" / "proxy").stat().st_uid == pwd.getpwnam(WORKER_USER).pw_uid


def test_dry_run_leaves_every_file_as_it_was(tmp_path: Path, cores: Path) -> None:
    prefix = tmp_path / "p"
    conf = write_conf(prefix)
    before = listing(prefix)
    others = leftovers()  # other runs' on this machine
    for extra in ([], ["--json"]):
        proc = run_cli("setup", "--conf", str(conf), "--prefix", str(prefix),
                       "--core-dir", str(cores), *extra)
        assert proc.returncode in (0, 1), proc.stderr
        if extra:
            data = json.loads(proc.stdout)
            assert data["mode"] == "dry-run" and data["notes"] == []
            assert [c["directive"] for c in data["changes"]] == ["worker_rlimit_core",
                                                                 "working_directory"]
        else:
            assert "dry run: nothing changed" in proc.stdout
        assert [x for x in CREATED if (prefix / x).exists()] == []
        assert listing(prefix) == before
        assert (prefix / "logs" / "old.log").read_text() == "a line of yesterday\n"
    assert not cores.exists() and leftovers() <= others


def test_a_killed_checks_mount_point_is_removed_by_the_next(tmp_path: Path, cores: Path) -> None:
    # A check SIGKILLed during nginx -t leaves its (empty) mount point; the
    # next check removes it once that process is gone, and only then.
    prefix = tmp_path / "p"
    conf = write_conf(prefix)
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is gone
    stale = Path(tempfile.gettempdir()) / f"crashkit-ns-{dead.pid}-test"
    alive = Path(tempfile.gettempdir()) / f"crashkit-ns-{os.getpid()}-test"
    stale.mkdir()
    alive.mkdir()
    try:
        proc = run_cli("setup", "--conf", str(conf), "--prefix", str(prefix),
                       "--core-dir", str(cores))
        assert proc.returncode in (0, 1), proc.stderr
        assert not stale.exists() and alive.exists()
    finally:
        for d in (stale, alive):
            if d.exists():
                d.rmdir()
    # The check still checks: a log whose directory is missing fails it, as
    # plain nginx -t does.
    conf.write_text(conf.read_text().replace("logs/server.log", "nodir/server.log"))
    before = listing(prefix)
    proc = run_cli("setup", "--conf", str(conf), "--prefix", str(prefix))
    assert proc.returncode == 2 and proc.stderr == (
        f"crashkit: error: {conf}: the config fails nginx -t; fix it first, nothing changed: "
        f'open() "{prefix}/nodir/server.log" failed (2: No such file or directory)\n')
    assert listing(prefix) == before


def test_a_mount_below_an_overlaid_directory_stays_visible(tmp_path: Path) -> None:
    # logs/ is overlaid (error.log is missing); logs/sub is a tmpfs mounted
    # below it, and the access log's directory exists only there: nginx -t
    # passes only if that mount is bound back into the check's namespace,
    # and nothing lands on it. Run in a mount namespace of the test's own,
    # so the tmpfs is nobody else's.
    prefix = tmp_path / "p"
    (prefix / "logs" / "sub").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(f"user {WORKER_USER};\npid {prefix}/nginx.pid;\n"
                    f"error_log {prefix}/logs/error.log;\nevents {{ }}\n"
                    f"http {{ access_log {prefix}/logs/sub/d/access.log; }}\n")
    script = (f'mount -t tmpfs t "{prefix}/logs/sub" && mkdir "{prefix}/logs/sub/d" && '
              f'"$0" -m crashkit setup --json --conf "{conf}" --prefix "{prefix}" '
              '--core-dir /var/lib/crashkit-test-unused; echo "rc=$?"; '
              f'ls -A "{prefix}" "{prefix}/logs" "{prefix}/logs/sub" "{prefix}/logs/sub/d"')
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           sys.executable], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    if "unshare failed" in proc.stderr:
        unavailable(f"no mount namespace here: {proc.stderr.strip()}")
    out = proc.stdout
    assert "\nrc=" in out, proc.stderr
    data = json.loads(out[:out.index("\nrc=")])
    assert data["mode"] == "dry-run" and data["notes"] == [], proc.stderr
    assert out[out.index("\nrc="):].split("\n")[1:] == [
        "rc=1", f"{prefix}:", "logs", "nginx.conf", "", f"{prefix}/logs:", "sub", "",
        f"{prefix}/logs/sub:", "d", "", f"{prefix}/logs/sub/d:", ""]


def test_where_no_overlay_can_be_made_the_dry_run_says_so(tmp_path: Path, cores: Path) -> None:
    # overlayfs's options cannot name a directory with ':' in it: nginx -t
    # runs as it is there, creates the missing log as nginx does, and the
    # dry run's note says that it may have.
    prefix = tmp_path / "a:b"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(f"user {WORKER_USER};\npid {tmp_path}/nginx.pid;\n"
                    f"error_log {prefix}/error.log;\nevents {{ }}\n")
    proc = run_cli("setup", "--json", "--conf", str(conf), "--core-dir", str(cores))
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["notes"] == [
        "nginx -t ran as it is (no private mount namespace with overlays of the directories it "
        "writes could be made here): it may have created the config's missing log and pid "
        "files and temp directories, as nginx itself does when it starts"]
    assert (prefix / "error.log").exists()
